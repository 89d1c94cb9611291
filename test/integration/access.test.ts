import { type IncomingHttpHeaders, request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { startUpstream } from '../helpers/upstream.ts';

closeAfterEach();

/** The test client is 127.0.0.1, so 10.0.0.0/8 shuts it out. */
async function setup(allowedClients = '[10.0.0.0/8]') {
  const upstream = await startUpstream();
  const proxy = await startProxy(`access:
  allowedClients: ${allowedClients}
connect:
  allowedPorts: [${upstream.port}]
listeners:
  - listen: 127.0.0.1:0
    upstream: ${upstream.origin}
`);
  return { up: upstream, px: proxy };
}

interface Head {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
}

/** One request with node:http; resolves on the answer's head whatever kind it is. */
function headOf(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<Head> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false });
    req.on('error', reject);
    const done = (
      res: { statusCode?: number; headers: IncomingHttpHeaders },
      socket?: { destroy(): void },
    ) => {
      socket?.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    };
    req.on('response', (res) => {
      res.resume();
      done(res);
    });
    req.on('connect', (res, socket) => done(res, socket));
    req.on('upgrade', (res, socket) => done(res, socket));
    req.end();
  });
}

async function tunnelCount(px: TestProxy, upstreamLabel: string, outcome: string): Promise<number> {
  const text = (await px.app.metrics?.text()) ?? '';
  const prefix = `reprise_tunnels_total{upstream="${upstreamLabel}",outcome="${outcome}"} `;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(prefix.length));
}

describe('access.allowedClients (SPEC §5)', () => {
  it('answers 403 forbidden to an HTTP request from a client outside allowedClients', async () => {
    const { up, px } = await setup();
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(403);
    expect(res.headers['x-reprise-error']).toBe('forbidden');
    expect(JSON.parse(res.body.toString())).toMatchObject({ error: 'forbidden' });
    expect(up.seen).toHaveLength(0);
  });

  it('answers 403 forbidden to a CONNECT from a client outside allowedClients', async () => {
    const { up, px } = await setup();
    const res = await headOf(px.port, 'CONNECT', up.authority);
    expect(res.status).toBe(403);
    expect(res.headers['x-reprise-error']).toBe('forbidden');
    expect(up.connections).toBe(0);
    expect(await tunnelCount(px, up.authority, 'forbidden')).toBe(1);
  });

  it('answers 403 forbidden to an Upgrade from a client outside allowedClients', async () => {
    const { up, px } = await setup();
    const res = await headOf(px.port, 'GET', `${up.origin}/ws`, {
      connection: 'upgrade',
      upgrade: 'websocket',
    });
    expect(res.status).toBe(403);
    expect(res.headers['x-reprise-error']).toBe('forbidden');
    expect(up.connections).toBe(0);
  });

  it('answers 403 forbidden on a listener port too', async () => {
    const { up, px } = await setup();
    const res = await headOf(px.app.listenerPorts[0] as number, 'GET', '/');
    expect(res.status).toBe(403);
    expect(up.seen).toHaveLength(0);
  });

  it('refuses the next request on a kept-alive connection once a reload shuts its client out', async () => {
    const { up, px } = await setup('[127.0.0.0/8]');
    const client = await RawClient.connect(px.port);
    const request = `GET ${up.origin}/ HTTP/1.1\r\nHost: ${up.authority}\r\n\r\n`;
    client.write(request);
    expect(await client.read()).toMatchObject({ status: 200 });
    const text =
      'version: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\naccess:\n  allowedClients: [10.0.0.0/8]\n';
    px.app.reload(loadConfigText(text, 'reload.yaml'));
    client.write(request);
    expect(await client.read()).toMatchObject({ status: 403 });
    expect(up.seen).toHaveLength(1);
    client.destroy();
  });

  it('serves a client inside allowedClients', async () => {
    const { up, px } = await setup('[10.0.0.0/8, 127.0.0.0/8]');
    expect((await viaProxy(px.port, 'GET', `${up.origin}/`)).status).toBe(200);
    expect((await headOf(px.port, 'CONNECT', up.authority)).status).toBe(200);
    expect(up.seen).toHaveLength(1);
  });
});
