/**
 * `reprise demo-upstream` (README "Set up"): each request id fails its first two tries with
 * 503, so a GET through reprise heals on its third try, and a client calling it directly gets
 * 503. On an ephemeral port here; test/e2e/first-minute.test.ts runs the README's commands.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createDemoUpstream } from '../../src/cli/demo-upstream.ts';
import { closeAfterEach, closeLater } from '../helpers/close-after-each.ts';
import { FAST, startProxy, viaProxy } from '../helpers/proxy.ts';

closeAfterEach();
const tries: string[] = [];
afterEach(() => {
  tries.length = 0;
});

async function startDemo(failures?: number): Promise<string> {
  const server = createDemoUpstream({ failures, onTry: (line) => tries.push(line) });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closeLater(async () => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function direct(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, body: await res.text() };
}

describe('demo-upstream', () => {
  it('heals a GET through reprise on its third try', async () => {
    const origin = await startDemo();
    const proxy = await startProxy(FAST);
    const answer = await viaProxy(proxy.port, 'GET', `${origin}/hello`);
    expect(answer.status).toBe(200);
    expect(answer.headers['x-reprise-attempts']).toBe('3');
    expect(answer.body.toString()).toMatch(/^healed: request \S+ answered on its try 3/);
    expect(proxy.requests()[0]).toMatchObject({ attempts: 3, retries: ['503', '503'] });
    expect(tries).toEqual([
      'demo-upstream: GET /hello try 1 -> 503',
      'demo-upstream: GET /hello try 2 -> 503',
      'demo-upstream: GET /hello try 3 -> 200',
    ]);
  });

  it('answers 503 to a client that calls it directly, every time', async () => {
    const origin = await startDemo();
    for (let i = 0; i < 4; i++) expect((await direct(`${origin}/`)).status).toBe(503);
  });

  it('counts tries per request id, so requests in between do not disturb each other', async () => {
    const origin = await startDemo(1);
    expect((await direct(origin, { 'x-request-id': 'a' })).status).toBe(503);
    expect((await direct(origin, { 'x-request-id': 'b' })).status).toBe(503);
    expect((await direct(origin, { 'x-request-id': 'a' })).status).toBe(200);
    expect((await direct(origin, { 'x-request-id': 'b' })).status).toBe(200);
  });

  it('gives up when reprise may make fewer tries than it needs', async () => {
    const origin = await startDemo();
    const proxy = await startProxy(FAST);
    const answer = await viaProxy(proxy.port, 'GET', `${origin}/`, {
      headers: { 'x-reprise-max-attempts': '2' },
    });
    expect(answer.status).toBe(503);
    expect(answer.headers['x-reprise-attempts']).toBe('2');
  });
});
