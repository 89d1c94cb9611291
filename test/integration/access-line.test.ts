/**
 * The access line's join fields (README "Logs"): the request id (passed through, or made and
 * forwarded), the W3C trace id (its header forwarded untouched), the client address, the bytes
 * moved on the client connection, and the upstream address actually used. CONNECT tunnels and
 * Upgrades write the same fields, once their connection ends.
 */
import { once } from 'node:events';
import { createServer as createHttpServer, type Server } from 'node:http';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { FAST, startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import { reply, startUpstream, type Upstream } from '../helpers/upstream.ts';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let proxy: TestProxy | undefined;
let upstream: Upstream | undefined;
const servers: Server[] = [];
closeAfterEach();
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
  }
});

type Line = Record<string, unknown>;

/** The access lines once `count` are written (a tunnel's is written when it closes). */
async function accessLines(px: TestProxy, count: number): Promise<Line[]> {
  await vi.waitFor(() => expect(px.requests().length).toBeGreaterThanOrEqual(count));
  return px.requests();
}

/** Writes `request` on a fresh connection, reads until the proxy closes it. */
async function exchange(
  port: number,
  request: string,
): Promise<{ sent: number; received: Buffer; local: string }> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const local = `127.0.0.1:${socket.localPort}`;
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.write(request);
  await once(socket, 'close');
  return { sent: Buffer.byteLength(request), received: Buffer.concat(chunks), local };
}

describe('request id and trace id', () => {
  it("passes the client's x-request-id through and logs it", async () => {
    upstream = await startUpstream([reply(200, 'ok')]);
    proxy = await startProxy(FAST);
    const headers = { 'x-request-id': 'req-7f3a' };
    expect((await viaProxy(proxy.port, 'GET', `${upstream.origin}/a`, { headers })).status).toBe(
      200,
    );
    expect(upstream.seen.map((s) => s.headers['x-request-id'])).toEqual(['req-7f3a']);
    const [line] = await accessLines(proxy, 1);
    expect(line?.requestId).toBe('req-7f3a');
  });

  it('makes one request id when none came, sends it on every try, and logs it', async () => {
    upstream = await startUpstream([reply(503), reply(200, 'ok')]);
    proxy = await startProxy(FAST);
    expect((await viaProxy(proxy.port, 'GET', `${upstream.origin}/a`)).status).toBe(200);
    const ids = upstream.seen.map((s) => s.headers['x-request-id']);
    expect(ids).toHaveLength(2);
    expect(ids[0]).toMatch(UUID);
    expect(ids[1]).toBe(ids[0]);
    const [line] = await accessLines(proxy, 1);
    expect(line?.requestId).toBe(ids[0]);
  });

  it('logs the trace id of a traceparent and forwards the header untouched', async () => {
    upstream = await startUpstream([reply(200, 'ok')]);
    proxy = await startProxy(FAST);
    const headers = { traceparent: TRACEPARENT, tracestate: 'vendor=abc' };
    await viaProxy(proxy.port, 'GET', `${upstream.origin}/a`, { headers });
    expect(upstream.seen[0]?.headers.traceparent).toBe(TRACEPARENT);
    expect(upstream.seen[0]?.headers.tracestate).toBe('vendor=abc');
    const [line] = await accessLines(proxy, 1);
    expect(line?.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('logs no trace id for an invalid traceparent, and still forwards it as it came', async () => {
    upstream = await startUpstream([reply(200, 'ok')]);
    proxy = await startProxy(FAST);
    const invalid = '00-00000000000000000000000000000000-00f067aa0ba902b7-01';
    await viaProxy(proxy.port, 'GET', `${upstream.origin}/a`, {
      headers: { traceparent: invalid },
    });
    expect(upstream.seen[0]?.headers.traceparent).toBe(invalid);
    const [line] = await accessLines(proxy, 1);
    expect(line).not.toHaveProperty('traceId');
  });
});

describe('client, bytes and upstream address', () => {
  it('logs the client address, the exact bytes each way, and the address connected to', async () => {
    upstream = await startUpstream([reply(200, 'hello')]);
    proxy = await startProxy(FAST);
    const body = 'x'.repeat(1000);
    const request =
      `POST ${upstream.origin}/up HTTP/1.1\r\nhost: ${upstream.authority}\r\n` +
      `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
    const { sent, received, local } = await exchange(proxy.port, request);
    expect(received.toString('latin1')).toMatch(/^HTTP\/1\.1 200 [\s\S]*hello/);
    const [line] = await accessLines(proxy, 1);
    expect(line).toMatchObject({
      client: local,
      upstream: upstream.authority,
      upstreamAddress: upstream.authority,
      bytesIn: sent,
      bytesOut: received.length,
    });
  });

  it('logs the resolved address of a named upstream, and none when no try connected', async () => {
    upstream = await startUpstream([reply(200, 'ok')]);
    proxy = await startProxy(FAST);
    await viaProxy(proxy.port, 'GET', `http://localhost:${upstream.port}/a`);
    const dead = await startUpstream();
    const deadPort = dead.port;
    await dead.close();
    await viaProxy(proxy.port, 'GET', `http://127.0.0.1:${deadPort}/b`, {
      headers: { 'x-reprise-retry': 'off' },
    });
    const [named, refused] = await accessLines(proxy, 2);
    expect(named?.upstream).toBe(`localhost:${upstream.port}`);
    expect(named?.upstreamAddress).toBe(`127.0.0.1:${upstream.port}`);
    expect(refused?.error).toBe('connect-failure');
    expect(refused).not.toHaveProperty('upstreamAddress');
  });
});

/** A TCP server that echoes every byte. */
async function startEcho(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** An HTTP server that switches every Upgrade and then echoes. */
async function startUpgradeEcho(): Promise<number> {
  const server = createHttpServer((_req, res) => res.end('no'));
  server.on('upgrade', (_req, socket: Socket) => {
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n',
    );
    socket.pipe(socket);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Sends `head`, waits for `until` in the answer, sends `payload`, reads it back, closes. */
async function passThrough(
  port: number,
  head: string,
  until: string,
  payload: string,
): Promise<{ sent: number; received: number; local: string }> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const local = `127.0.0.1:${socket.localPort}`;
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    text += chunk;
  });
  socket.write(head);
  await vi.waitFor(() => expect(text).toContain(until));
  socket.write(payload);
  await vi.waitFor(() => expect(text.endsWith(payload)).toBe(true));
  socket.end();
  await once(socket, 'close');
  return { sent: head.length + payload.length, received: text.length, local };
}

describe('CONNECT and Upgrade lines', () => {
  it('writes a CONNECT line with the request fields once the tunnel closes', async () => {
    const echo = await startEcho();
    try {
      proxy = await startProxy(`${FAST}connect: { allowedPorts: [${echo.port}] }\n`);
      const authority = `127.0.0.1:${echo.port}`;
      const head = `CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\nx-request-id: t-1\r\n\r\n`;
      const moved = await passThrough(proxy.port, head, '200 Connection Established', 'ping');
      const [line] = await accessLines(proxy, 1);
      expect(line).toMatchObject({
        msg: 'request',
        requestId: 't-1',
        client: moved.local,
        method: 'CONNECT',
        upstream: authority,
        upstreamAddress: authority,
        status: 200,
        attempts: 1,
        bytesIn: moved.sent,
        bytesOut: moved.received,
      });
    } finally {
      echo.close();
    }
  });

  it('writes an Upgrade line with the request fields once the connection closes', async () => {
    const port = await startUpgradeEcho();
    proxy = await startProxy(FAST);
    const authority = `127.0.0.1:${port}`;
    const head =
      `GET http://${authority}/ws HTTP/1.1\r\nhost: ${authority}\r\n` +
      `connection: upgrade\r\nupgrade: echo\r\ntraceparent: ${TRACEPARENT}\r\n\r\n`;
    const moved = await passThrough(proxy.port, head, '\r\n\r\n', 'ping');
    const [line] = await accessLines(proxy, 1);
    expect(line).toMatchObject({
      msg: 'request',
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      client: moved.local,
      method: 'GET',
      upstream: authority,
      upstreamAddress: authority,
      status: 101,
      bytesIn: moved.sent,
      bytesOut: moved.received,
    });
    expect(line?.requestId).toMatch(UUID);
  });

  it('writes a declined Upgrade line, with the bytes of the answer, once it has gone', async () => {
    upstream = await startUpstream([reply(503, 'not here')]);
    proxy = await startProxy(FAST);
    const request =
      `GET ${upstream.origin}/ws HTTP/1.1\r\nhost: ${upstream.authority}\r\n` +
      'connection: upgrade\r\nupgrade: echo\r\n\r\n';
    const { sent, received, local } = await exchange(proxy.port, request);
    expect(received.toString('latin1')).toMatch(/^HTTP\/1\.1 503 [\s\S]*not here/);
    const [line] = await accessLines(proxy, 1);
    expect(line).toMatchObject({
      client: local,
      status: 503,
      attempts: 1,
      upstreamAddress: upstream.authority,
      bytesIn: sent,
      bytesOut: received.length,
    });
  });

  it('gives request, refusal, CONNECT and Upgrade lines the same field names', async () => {
    upstream = await startUpstream([reply(200, 'ok')]);
    const echo = await startEcho();
    try {
      const upgradePort = await startUpgradeEcho();
      proxy = await startProxy(`${FAST}connect: { allowedPorts: [${echo.port}] }\n`);
      await viaProxy(proxy.port, 'GET', `${upstream.origin}/a`);
      await viaProxy(proxy.port, 'GET', '/not-absolute');
      const tunnel = `127.0.0.1:${echo.port}`;
      await passThrough(
        proxy.port,
        `CONNECT ${tunnel} HTTP/1.1\r\nhost: ${tunnel}\r\n\r\n`,
        '200',
        'x',
      );
      const ws = `127.0.0.1:${upgradePort}`;
      const upgrade = `GET http://${ws}/ HTTP/1.1\r\nhost: ${ws}\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n`;
      await passThrough(proxy.port, upgrade, '\r\n\r\n', 'y');
      const lines = await accessLines(proxy, 4);
      const always = ['requestId', 'client', 'method', 'status', 'attempts', 'bytesIn', 'bytesOut'];
      for (const line of lines) expect(Object.keys(line)).toEqual(expect.arrayContaining(always));
      // the fields a line has are a subset of one list, in one order
      const order = Object.keys(lines[0] as Line);
      for (const line of lines) {
        const keys = Object.keys(line).filter((k) => order.includes(k));
        expect(keys).toEqual(order.filter((k) => k in line));
      }
      expect(lines.map((l) => l.method)).toEqual(['GET', 'GET', 'CONNECT', 'GET']);
      expect(lines.some((l) => 'outcome' in l)).toBe(false);
    } finally {
      echo.close();
    }
  });
});
