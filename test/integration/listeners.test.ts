import { request as httpRequest } from 'node:http';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { FAST, startProxy, viaProxy } from '../helpers/proxy.ts';
import { reply, startUpstream } from '../helpers/upstream.ts';

closeAfterEach();

/** A proxy with one listener in front of a scripted upstream; `yaml` is appended. */
async function setup(script: Parameters<typeof startUpstream>[0], yaml = FAST) {
  const upstream = await startUpstream(script);
  const proxy = await startProxy(
    `${yaml}listeners:\n  - listen: 127.0.0.1:0\n    upstream: ${upstream.origin}\n`,
  );
  const port = proxy.app.listenerPorts[0] as number;
  return { up: upstream, px: proxy, port, base: `http://127.0.0.1:${port}` };
}

/** Sends `path` as the request target verbatim (origin- or absolute-form) to `port`. */
function sendTo(
  port: number,
  method: string,
  path: string,
): Promise<{ status: number; error: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, error: res.headers['x-reprise-error'] }),
      );
    });
    req.on('connect', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, error: res.headers['x-reprise-error'] });
    });
    req.end();
  });
}

describe('fixed-upstream listeners (SPEC §6)', () => {
  it('heals a 503 with a retry for an undici request in origin-form', async () => {
    const { up, base } = await setup([reply(503), reply(200, 'healed')]);
    const res = await request(`${base}/items?page=2`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('healed');
    expect(res.headers['x-reprise-attempts']).toBe('2');
    expect(up.seen.map((s) => s.url)).toEqual(['/items?page=2', '/items?page=2']);
  });

  it("heals a 503 with a retry for Node's fetch without a proxy", async () => {
    const { up, base } = await setup([reply(503), reply(200, 'healed')]);
    const res = await fetch(`${base}/items`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('healed');
    expect(up.seen).toHaveLength(2);
  });

  it("sends the upstream's authority as Host", async () => {
    const { up, base } = await setup([reply(200)]);
    await (await fetch(`${base}/`)).text();
    expect(up.seen[0]?.headers.host).toBe(up.authority);
  });

  it("matches routes on the upstream's host, not the listener's", async () => {
    const { up, px, base } = await setup(
      [reply(503), reply(200)],
      `${FAST}routes:\n  - name: fixed\n    match: { host: 127.0.0.1 }\n    retry: { attempts: 1 }\n`,
    );
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(503);
    await res.text();
    expect(up.seen).toHaveLength(1);
    expect(px.requests()[0]).toMatchObject({ route: 'fixed', upstream: up.authority });
  });

  it('shares the upstream circuit breaker with the proxy port', async () => {
    const { up, px, base } = await setup(
      [reply(503)],
      `${FAST}      attempts: 1\n  upstream:\n    circuitBreaker: { consecutiveFailures: 2, failingFor: 0ms }\n`,
    );
    for (let i = 0; i < 2; i++) expect((await fetch(`${base}/`)).status).toBe(503);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(503);
    expect(res.headers['x-reprise-error']).toBe('circuit-open');
    expect(up.seen).toHaveLength(2);
  });

  it("accepts absolute-form naming the listener's upstream", async () => {
    const { up, port } = await setup([reply(200)]);
    expect((await sendTo(port, 'GET', `${up.origin}/abs`)).status).toBe(200);
    expect(up.seen[0]?.url).toBe('/abs');
  });

  it('answers 400 to absolute-form naming another host', async () => {
    const { up, port } = await setup([reply(200)]);
    expect(await sendTo(port, 'GET', `http://127.0.0.1:${port}/`)).toMatchObject({ status: 400 });
    expect(await sendTo(port, 'GET', 'http://elsewhere.example:8080/')).toEqual({
      status: 400,
      error: 'bad-request',
    });
    expect(up.seen).toHaveLength(0);
  });

  it('answers 400 to a CONNECT on a listener port', async () => {
    const { port } = await setup([reply(200)]);
    expect(await sendTo(port, 'CONNECT', 'example.com:443')).toEqual({
      status: 400,
      error: 'bad-request',
    });
  });
});
