/**
 * The quiet collector as the app wires it (the rule itself: test/unit/quiet-collector.test.ts):
 * what counts as traffic, and that a collection follows once it stops. The app's period is
 * 20 ms here instead of 5 s, and the collection a recorder instead of V8's.
 */

import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startProxy } from '../helpers/proxy.ts';
import { sendRaw } from '../helpers/raw-head.ts';
import { delayed, reply, startUpstream } from '../helpers/upstream.ts';

const PERIOD_MS = 20;

async function setup(yaml = '') {
  const collections: number[] = [];
  const px = await startProxy(yaml, {
    collectGarbage: () => collections.push(performance.now()),
    quietPeriodMs: PERIOD_MS,
  });
  return { px, collections };
}

const sockets: Socket[] = [];
let tcp: Server | undefined;
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await new Promise((resolve) => (tcp ? tcp.close(resolve) : resolve(undefined)));
  tcp = undefined;
});

describe('quiet collector in the app', () => {
  it('never collects before the first request, then once, three quiet periods after it', async () => {
    const up = await startUpstream([reply(200, 'ok')]);
    const { px, collections } = await setup();
    await sleep(10 * PERIOD_MS);
    expect(collections).toHaveLength(0);

    const answer = await sendRaw(
      px.port,
      `GET ${up.origin}/ HTTP/1.1\r\nHost: ${up.authority}\r\n\r\n`,
    );
    sockets.push(answer.socket);
    expect(answer.status).toBe(200);
    const answered = performance.now();
    await vi.waitFor(() => expect(collections).toHaveLength(1), { timeout: 3000 });
    // the tick that saw the request, then three without one: never sooner than two periods
    expect((collections[0] as number) - answered).toBeGreaterThanOrEqual(2 * PERIOD_MS - 2);
    await sleep(10 * PERIOD_MS);
    expect(collections).toHaveLength(1);
  });

  it('waits for a request in flight, though no other arrives', async () => {
    const up = await startUpstream([delayed(20 * PERIOD_MS, reply(200, 'late'))]);
    const { px, collections } = await setup();
    const pending = sendRaw(px.port, `GET ${up.origin}/ HTTP/1.1\r\nHost: ${up.authority}\r\n\r\n`);
    await sleep(15 * PERIOD_MS);
    expect(collections).toHaveLength(0);
    const answer = await pending;
    sockets.push(answer.socket);
    expect(answer.status).toBe(200);
    await vi.waitFor(() => expect(collections).toHaveLength(1), { timeout: 3000 });
  });

  it('counts an open CONNECT tunnel as traffic until it closes', async () => {
    tcp = createServer((socket) => socket.pipe(socket));
    tcp.listen(0, '127.0.0.1');
    await once(tcp, 'listening');
    const port = (tcp.address() as AddressInfo).port;
    const { px, collections } = await setup(`connect:\n  allowedPorts: [${port}]\n`);
    const authority = `127.0.0.1:${port}`;
    const tunnel = await sendRaw(
      px.port,
      `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`,
    );
    sockets.push(tunnel.socket);
    expect(tunnel.status).toBe(200);
    await sleep(15 * PERIOD_MS);
    expect(collections).toHaveLength(0);
    tunnel.socket.destroy();
    await vi.waitFor(() => expect(collections).toHaveLength(1), { timeout: 3000 });
  });
});
