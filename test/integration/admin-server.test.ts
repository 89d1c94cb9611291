import { once } from 'node:events';
import { connect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/admin/metrics.ts';
import { type AdminServer, startAdmin } from '../../src/admin/server.ts';

const LOOPBACK = { host: '127.0.0.1', port: 0 };

let ready = true;
let admin: AdminServer;
let base: string;
const metrics = new Metrics({
  upstreams: () => [
    {
      authority: 'api.example.com:80',
      state: 'open',
      budgetAvailable: 3,
      circuit: { failingForMs: 0, enabled: true },
    },
  ],
  bufferedBytes: () => 0,
});
const deps = {
  metrics,
  isReady: () => ready,
  effectiveConfig: () => ({ version: 1, listen: '127.0.0.1:3128' }),
  state: () => ({ upstreams: [{ authority: 'api.example.com:80', state: 'open' }] }),
};

beforeEach(async () => {
  ready = true;
  admin = await startAdmin(LOOPBACK, deps);
  base = `http://127.0.0.1:${admin.port}`;
});

afterEach(async () => {
  await admin.close();
});

describe('admin server', () => {
  it('listens on the port it picked for port 0', () => {
    expect(admin.port).toBeGreaterThan(0);
  });

  it('serves /metrics as Prometheus text with the registry content type', async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(metrics.contentType);
    const text = await res.text();
    expect(text).toContain('reprise_circuit_state{upstream="api.example.com:80",state="open"} 1');
  });

  it('answers /healthz with 200 ok', async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok\n');
  });

  it('answers /readyz with 200 when ready and 503 when not', async () => {
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    ready = false;
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
  });

  it('serves the effective config at /config and the state at /state as JSON', async () => {
    const config = await fetch(`${base}/config`);
    expect(config.headers.get('content-type')).toBe('application/json');
    expect(await config.json()).toEqual(deps.effectiveConfig());
    const state = await fetch(`${base}/state`);
    expect(await state.json()).toEqual(deps.state());
  });

  it('ignores a query string on an endpoint path', async () => {
    expect((await fetch(`${base}/healthz?verbose=1`)).status).toBe(200);
  });

  it('answers HEAD with the headers of GET and no body', async () => {
    const res = await fetch(`${base}/config`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(Number(res.headers.get('content-length'))).toBeGreaterThan(0);
    expect(await res.text()).toBe('');
  });

  it('answers an unknown path with 404', async () => {
    expect((await fetch(`${base}/admin`)).status).toBe(404);
  });

  it('answers other methods with 405 and Allow', async () => {
    const res = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
  });

  it('closes idle keep-alive connections on close', async () => {
    const socket = connect(admin.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: keep-alive\r\n\r\n');
    const [head] = (await once(socket, 'data')) as [Buffer];
    expect(head.toString()).toMatch(/^HTTP\/1\.1 200/);
    const closed = once(socket, 'close');
    await admin.close();
    await closed;
    admin = await startAdmin(LOOPBACK, deps); // for afterEach
  });

  it('closes a connection whose request is still being answered on close', async () => {
    let started!: () => void;
    const scraping = new Promise<void>((resolve) => {
      started = resolve;
    });
    const stuck = {
      contentType: 'text/plain',
      text: () => {
        started();
        return new Promise<string>(() => {});
      },
    };
    const slow = await startAdmin(LOOPBACK, { ...deps, metrics: stuck });
    const socket = connect(slow.port, '127.0.0.1');
    socket.on('error', () => {});
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    await once(socket, 'connect');
    socket.write('GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n');
    await scraping;
    const closed = once(socket, 'close').then(() => 'closed');
    // without closing active connections, close() waits for the stuck answer forever
    const stopped = slow.close().then(() => 'stopped');
    expect(await Promise.all([stopped, closed])).toEqual(['stopped', 'closed']);
    expect(Buffer.concat(received).toString()).toBe('');
    expect(socket.destroyed).toBe(true);
  });

  it('rejects when the port is taken', async () => {
    const taken = { host: '127.0.0.1', port: admin.port };
    await expect(startAdmin(taken, deps)).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});
