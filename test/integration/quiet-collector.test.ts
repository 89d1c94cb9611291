/**
 * The quiet collector as the app wires it (the rule itself: test/unit/quiet-collector.test.ts):
 * none after start-up, what counts as traffic, and that a collection follows once it stops.
 * The test fires the collection timers itself, and the collection is a recorder instead of V8's.
 */
import { once } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startProxy } from '../helpers/proxy.ts';
import { sendRaw } from '../helpers/raw-head.ts';
import { reply, type Step, startUpstream } from '../helpers/upstream.ts';

/** The app's quiet periods before it collects (src/app.ts). */
const QUIET_PERIODS = 3;

async function setup(yaml = '') {
  let collections = 0;
  const notStarted = (): void => {
    throw new Error('the app did not start its collection timers');
  };
  let tick = notStarted;
  const px = await startProxy(yaml, {
    collectGarbage: () => {
      collections++;
    },
    collectionTimers: {
      everyQuietPeriod: (onTick) => {
        tick = onTick;
        return () => {};
      },
    },
  });
  expect(collections).toBe(0);
  /** `n` periods pass; how many collections there have been. */
  const periods = (n: number) => {
    for (let i = 0; i < n; i++) tick();
    return collections;
  };
  return { px, periods };
}

const get = (authority: string) =>
  `GET http://${authority}/ HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;

const sockets: Socket[] = [];
let tcp: Server | undefined;
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await new Promise((resolve) => (tcp ? tcp.close(resolve) : resolve(undefined)));
  tcp = undefined;
});

describe('quiet collector in the app', () => {
  it('after start-up, never collects before the first request, then once, three quiet periods after it', async () => {
    const up = await startUpstream([reply(200, 'ok')]);
    const { px, periods } = await setup();
    expect(periods(10)).toBe(0);

    const answer = await sendRaw(px.port, get(up.authority));
    sockets.push(answer.socket);
    expect(answer.status).toBe(200);
    // the period that saw the request, then QUIET_PERIODS without one
    expect(periods(QUIET_PERIODS)).toBe(0);
    expect(periods(1)).toBe(1);
    expect(periods(10)).toBe(1);
  });

  it('waits for a request in flight, though no other arrives', async () => {
    let release = (): void => {};
    const held: Step = (_req, res) => {
      release = () => res.end('late');
    };
    const up = await startUpstream([held]);
    const { px, periods } = await setup();
    const pending = sendRaw(px.port, get(up.authority));
    await vi.waitFor(() => expect(up.seen).toHaveLength(1));
    expect(periods(10)).toBe(0);
    release();
    const answer = await pending;
    sockets.push(answer.socket);
    expect(answer.status).toBe(200);
    await vi.waitFor(() => expect(periods(1)).toBe(1));
  });

  it('counts an open CONNECT tunnel as traffic until it closes', async () => {
    tcp = createServer((socket) => socket.pipe(socket));
    tcp.listen(0, '127.0.0.1');
    await once(tcp, 'listening');
    const port = (tcp.address() as AddressInfo).port;
    const { px, periods } = await setup(`connect:\n  allowedPorts: [${port}]\n`);
    const authority = `127.0.0.1:${port}`;
    const connect = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;
    const tunnel = await sendRaw(px.port, connect);
    sockets.push(tunnel.socket);
    expect(tunnel.status).toBe(200);
    expect(periods(10)).toBe(0);
    tunnel.socket.destroy();
    // one period at a time until the proxy has seen the close: then it collects
    await vi.waitFor(() => expect(periods(1)).toBe(1));
  });
});
