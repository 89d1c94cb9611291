/**
 * Plain HTTP inside a CONNECT tunnel (SPEC §6): Node 24's fetch with NODE_USE_ENV_PROXY=1
 * tunnels even `http://` URLs; reprise serves what it reads there like a proxied request.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { closeAfterEach, closeLater } from '../helpers/close-after-each.ts';
import { FAST, startProxy } from '../helpers/proxy.ts';
import { openTunnel, requestOn } from '../helpers/tunnel-client.ts';
import { dropConnection, echo, reply, startUpstream } from '../helpers/upstream.ts';

closeAfterEach();

const CLEAN_ENV = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };

function nodeFetch(url: string, proxyPort: number, method = 'GET'): Promise<string> {
  const script =
    `fetch(process.argv[1], { method: '${method}' }).then(async (r) => ` +
    "console.log(r.status + ' ' + r.headers.get('x-reprise-attempts') + ' ' + (await r.text())))";
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['-e', script, url],
      {
        env: { ...CLEAN_ENV, NODE_USE_ENV_PROXY: '1', HTTP_PROXY: `http://127.0.0.1:${proxyPort}` },
        timeout: 20_000,
      },
      (err, out, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(out.trim()),
    );
  });
}

describe('plain HTTP inside a tunnel', () => {
  it('heals Node fetch with NODE_USE_ENV_PROXY=1 to a flaky http:// upstream', async () => {
    const up = await startUpstream([reply(503), dropConnection(), reply(200, 'ok')]);
    const proxy = await startProxy(`${FAST}connect: { allowedPorts: [${up.port}] }\n`);
    const said = await nodeFetch(`http://127.0.0.1:${up.port}/v1`, proxy.port);
    expect(said).toBe('200 3 ok');
    expect(up.seen.map((s) => s.headers['x-reprise-attempt'])).toEqual(['1', '2', '3']);
    const line = proxy.requests().find((l) => l.method === 'GET');
    expect(line).toMatchObject({ status: 200, attempts: 3, tunnel: 'plain-http', path: '/v1' });
    const text = (await proxy.app.metrics?.text()) ?? '';
    expect(text).toContain(
      `reprise_tunnels_total{upstream="127.0.0.1:${up.port}",outcome="plain-http"} 1`,
    );
  });

  it('serves keep-alive requests on one tunnel, each to the CONNECT authority', async () => {
    const up = await startUpstream([echo()]);
    const proxy = await startProxy(`${FAST}connect: { allowedPorts: [${up.port}] }\n`);
    const authority = `127.0.0.1:${up.port}`;
    const socket = await openTunnel(proxy.port, authority);
    for (const body of ['one', 'two']) {
      const res = await requestOn(socket, authority, {
        method: 'PUT',
        path: '/x',
        body,
        headers: { connection: 'keep-alive' },
      });
      expect(res.body.toString()).toBe(body);
    }
    expect(up.seen.map((s) => s.headers.host)).toEqual([authority, authority]);
  });

  it('answers 400 to a request inside naming another host', async () => {
    const up = await startUpstream([reply(200, 'ok')]);
    const proxy = await startProxy(`${FAST}connect: { allowedPorts: [${up.port}] }\n`);
    const authority = `127.0.0.1:${up.port}`;
    const socket = await openTunnel(proxy.port, authority);
    const res = await requestOn(socket, authority, { path: 'http://elsewhere.example/' });
    expect(res.status).toBe(400);
    expect(up.seen).toHaveLength(0);
  });

  it('passes a protocol whose server speaks first through untouched', async () => {
    // an SMTP-like server: a greeting first, then it echoes
    const greeter = createServer((socket) => {
      socket.write('220 hello\r\n');
      socket.pipe(socket);
    });
    greeter.listen(0, '127.0.0.1');
    await once(greeter, 'listening');
    closeLater(() => new Promise<void>((resolve) => greeter.close(() => resolve())));
    const port = (greeter.address() as AddressInfo).port;
    const proxy = await startProxy(`connect: { allowedPorts: [${port}] }\n`);
    const socket = await openTunnel(proxy.port, `127.0.0.1:${port}`);
    const greeted = once(socket, 'data');
    socket.resume();
    const [greeting] = (await greeted) as [Buffer];
    expect(greeting.toString()).toBe('220 hello\r\n');
    // even a line that looks like HTTP goes through as bytes once the server spoke first
    socket.write('HELO x\r\n');
    const [echoed] = (await once(socket, 'data')) as [Buffer];
    expect(echoed.toString()).toBe('HELO x\r\n');
    socket.destroy();
  });
});
