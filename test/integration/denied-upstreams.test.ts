/**
 * `access.deniedUpstreams` on every path (SPEC §6): a plain request, a CONNECT and an Upgrade
 * to a denied address are refused with 403 before any packet reaches it, whether the address
 * is spelled as an IPv4 or IPv6 literal, another spelling of one, or a name resolving to it.
 * The upstream counts the connections it accepted: zero.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { startProxy, viaProxy } from '../helpers/proxy.ts';
import { sendRaw } from '../helpers/raw-head.ts';

closeAfterEach();

interface CountingServer {
  readonly port: number;
  /** Connections accepted, on either address family. */
  accepted(): number;
  close(): Promise<void>;
}

/** A real server on every loopback address (IPv4 and IPv6) that counts what it accepts. */
async function startCountingServer(): Promise<CountingServer> {
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((_req, res) => res.end('reached'));
  server.on('connection', (socket: Socket) => {
    accepted++;
    sockets.add(socket);
  });
  server.on('upgrade', (_req, socket: Socket) => {
    socket.end(
      'HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n',
    );
  });
  server.listen({ port: 0, host: '::', ipv6Only: false });
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

let upstream: CountingServer | undefined;
afterEach(async () => {
  await upstream?.close();
  upstream = undefined;
});

async function setup() {
  upstream = await startCountingServer();
  const proxy = await startProxy(
    `access:\n  deniedUpstreams: [127.0.0.0/8, ::1/128]\nconnect:\n  allowedPorts: [${upstream.port}]\n`,
  );
  return { up: upstream, proxy };
}

const SPELLINGS: [string, (port: number) => string][] = [
  ['an IPv4 literal', (port) => `127.0.0.1:${port}`],
  ['a name that resolves to a denied address', (port) => `localhost:${port}`],
  ['an IPv6 literal', (port) => `[::1]:${port}`],
  ['another spelling of an IPv4 address', (port) => `2130706433:${port}`],
  ['an IPv4-mapped IPv6 address', (port) => `[::ffff:127.0.0.1]:${port}`],
];

describe('access.deniedUpstreams on every path', () => {
  it.each(SPELLINGS)('refuses a plain GET to %s without connecting', async (_name, spell) => {
    const { up, proxy } = await setup();
    const answer = await viaProxy(proxy.port, 'GET', `http://${spell(up.port)}/`);
    expect(answer.status).toBe(403);
    expect(answer.headers['x-reprise-error']).toBe('forbidden');
    expect(up.accepted()).toBe(0);
  });

  it.each(SPELLINGS)('refuses a CONNECT to %s without connecting', async (_name, spell) => {
    const { up, proxy } = await setup();
    const authority = spell(up.port);
    const answer = await sendRaw(
      proxy.port,
      `CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`,
    );
    answer.socket.destroy();
    expect(answer.status).toBe(403);
    expect(answer.headers['x-reprise-error']).toBe('forbidden');
    await vi.waitFor(() => expect(proxy.requests()).toHaveLength(1));
    expect(proxy.requests()[0]).toMatchObject({ method: 'CONNECT', status: 403 });
    expect(up.accepted()).toBe(0);
  });

  it.each(SPELLINGS)('refuses an Upgrade to %s without connecting', async (_name, spell) => {
    const { up, proxy } = await setup();
    const authority = spell(up.port);
    const answer = await sendRaw(
      proxy.port,
      `GET http://${authority}/chat HTTP/1.1\r\nhost: ${authority}\r\nconnection: upgrade\r\n` +
        'upgrade: websocket\r\nsec-websocket-version: 13\r\n' +
        'sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    answer.socket.destroy();
    expect(answer.status).toBe(403);
    expect(answer.headers['x-reprise-error']).toBe('forbidden');
    await vi.waitFor(() => expect(proxy.requests()).toHaveLength(1));
    expect(proxy.requests()[0]).toMatchObject({ status: 403, error: 'forbidden', attempts: 0 });
    expect(up.accepted()).toBe(0);
  });

  it('still connects to an address outside the list', async () => {
    upstream = await startCountingServer();
    const proxy = await startProxy('access:\n  deniedUpstreams: [169.254.169.254/32]\n');
    const answer = await viaProxy(proxy.port, 'GET', `http://127.0.0.1:${upstream.port}/`);
    expect(answer.status).toBe(200);
    expect(upstream.accepted()).toBe(1);
  });
});
