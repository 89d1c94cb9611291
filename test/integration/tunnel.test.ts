import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startApp } from '../../src/app.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log.ts';
import { manualClock, until } from '../helpers/clock.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { type RawAnswer, readText, sendRaw } from '../helpers/raw-head.ts';
import { deadPort } from '../helpers/upstream.ts';

interface TcpUpstream {
  readonly port: number;
  readonly sockets: Socket[];
  close(): Promise<void>;
}

/** A raw TCP server (allowHalfOpen) that hands each connection to `onSocket`. */
async function startTcp(onSocket: (socket: Socket) => void = echo, port = 0): Promise<TcpUpstream> {
  const sockets: Socket[] = [];
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    onSocket(socket);
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    sockets,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function echo(socket: Socket): void {
  socket.pipe(socket);
}

/** Resolves when the peer ended or the socket closed (the test sockets are allowHalfOpen). */
function closed(socket: Socket): Promise<void> {
  if (socket.closed || socket.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once('end', resolve);
    socket.once('close', resolve);
    socket.resume();
  });
}

/** The tunnel is up: bytes written into it come back from the echo upstream. */
async function expectCarried(socket: Socket): Promise<void> {
  socket.write('ping');
  expect(await readText(socket, 4)).toBe('ping');
}

/** The peer ended its side, or the socket is gone. */
function expectEnded(socket: Socket): void {
  expect(socket.readableEnded || socket.destroyed).toBe(true);
}

const connectRequest = (authority: string) =>
  `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;

/** Connect retries with a fixed back-off of `backoff`, for tests that step the proxy's clock. */
function connectRetryYaml(port: number, backoff: string): string {
  return `connect:
  allowedPorts: [${port}]
  retry: { attempts: 5, connectTimeout: 1s, backoff: { base: ${backoff}, max: ${backoff}, jitter: none } }
`;
}

function retryLines(px: TestProxy): number {
  return px.logs.filter((line) => line.msg === 'retry').length;
}

function connectYaml(port: number, extra = ''): string {
  return `connect:
  allowedPorts: [${port}]
  retry: { attempts: 3, connectTimeout: 1s, backoff: { base: 1ms, max: 5ms } }
${extra}`;
}

async function tunnelCount(px: TestProxy, upstream: string, outcome: string): Promise<number> {
  const text = (await px.app.metrics?.text()) ?? '';
  const line = text
    .split('\n')
    .find((l) =>
      l.startsWith(`reprise_tunnels_total{upstream="${upstream}",outcome="${outcome}"}`),
    );
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

let proxy: TestProxy | undefined;
let tcp: TcpUpstream | undefined;
const clients: Socket[] = [];
afterEach(async () => {
  for (const socket of clients.splice(0)) socket.destroy();
  await proxy?.close();
  await tcp?.close();
  proxy = undefined;
  tcp = undefined;
});

async function setup(onSocket?: (socket: Socket) => void, extra = '') {
  tcp = await startTcp(onSocket);
  proxy = await startProxy(connectYaml(tcp.port, extra));
  return { up: tcp, px: proxy, authority: `127.0.0.1:${tcp.port}` };
}

async function open(px: TestProxy, authority: string, early = ''): Promise<RawAnswer> {
  const answer = await sendRaw(px.port, connectRequest(authority) + early);
  clients.push(answer.socket);
  return answer;
}

describe('CONNECT tunnels (SPEC §6)', () => {
  it('answers 200 Connection Established and carries bytes both ways', async () => {
    const { px, authority } = await setup();
    const answer = await open(px, authority);
    expect(answer.statusLine).toBe('HTTP/1.1 200 Connection Established');
    answer.socket.write('hello through the tunnel');
    expect(await readText(answer.socket, 24)).toBe('hello through the tunnel');
    expect(await tunnelCount(px, authority, 'established')).toBe(1);
  });

  it('delivers bytes the client sent along with the CONNECT head', async () => {
    const { px, authority } = await setup();
    const answer = await open(px, authority, 'early bytes');
    expect(answer.status).toBe(200);
    expect(await readText(answer.socket, 11)).toBe('early bytes');
  });

  it('passes the client half-close to the upstream and still relays its answer', async () => {
    const { px, authority } = await setup((socket) => {
      let got = '';
      socket.on('data', (chunk: Buffer) => {
        got += chunk.toString();
      });
      socket.on('end', () => socket.end(`pong:${got}`));
    });
    const answer = await open(px, authority);
    answer.socket.end('ping');
    expect(await readText(answer.socket)).toBe('pong:ping');
    await closed(answer.socket);
  });

  it('passes the upstream half-close to the client and still relays what the client sends', async () => {
    let got = '';
    const { up, px, authority } = await setup((socket) => {
      socket.on('data', (chunk: Buffer) => {
        got += chunk.toString();
      });
      socket.end('bye');
    });
    const answer = await open(px, authority);
    expect(await readText(answer.socket)).toBe('bye');
    answer.socket.end('after');
    await closed(up.sockets[0] as Socket);
    expect(got).toBe('after');
  });

  it('answers 403 forbidden to a port outside connect.allowedPorts without connecting', async () => {
    const { up, px } = await setup();
    const other = await startTcp();
    try {
      const answer = await open(px, `127.0.0.1:${other.port}`);
      expect(answer.status).toBe(403);
      expect(answer.headers['x-reprise-error']).toBe('forbidden');
      expect(JSON.parse(await readText(answer.socket))).toMatchObject({ error: 'forbidden' });
      expect(other.sockets).toHaveLength(0);
      expect(up.sockets).toHaveLength(0);
      expect(await tunnelCount(px, `127.0.0.1:${other.port}`, 'forbidden')).toBe(1);
    } finally {
      await other.close();
    }
  });

  it('answers 400 bad-request to a CONNECT target without a port', async () => {
    const { px } = await setup();
    const answer = await open(px, 'example.com');
    expect(answer.status).toBe(400);
    expect(answer.headers['x-reprise-error']).toBe('bad-request');
  });

  it('reaches a port that starts listening during the connect back-off', async () => {
    const port = await deadPort();
    const clock = manualClock();
    proxy = await startProxy(connectRetryYaml(port, '100ms'), clock.options);
    const px = proxy;
    const opening = open(px, `127.0.0.1:${port}`);
    await until(() => retryLines(px) === 1);
    tcp = await startTcp(echo, port);
    await clock.advance(100);
    const answer = await opening;
    expect(answer.status).toBe(200);
    answer.socket.write('late');
    expect(await readText(answer.socket, 4)).toBe('late');
  });

  it('logs and counts the connects retried before a tunnel opened on its third', async () => {
    const port = await deadPort();
    const clock = manualClock();
    proxy = await startProxy(connectRetryYaml(port, '1s'), clock.options);
    const px = proxy;
    const opening = open(px, `127.0.0.1:${port}`);
    // each back-off is armed as its retry is logged; the port opens during the second
    await until(() => retryLines(px) === 1);
    await clock.advance(1_000);
    await until(() => retryLines(px) === 2);
    tcp = await startTcp(echo, port);
    await clock.advance(1_000);
    const answer = await opening;
    expect(answer.status).toBe(200);
    answer.socket.destroy();
    await vi.waitFor(() => expect(px.requests()).toHaveLength(1));
    expect(px.requests()[0]).toMatchObject({
      method: 'CONNECT',
      status: 200,
      attempts: 3,
      retries: ['connect-failure', 'connect-failure'],
    });
    const text = (await px.app.metrics?.text()) ?? '';
    expect(text).toContain(
      `reprise_retries_total{route="",upstream="127.0.0.1:${port}",reason="connect-failure"} 2`,
    );
  });

  it('answers 502 connect-failure after connect.retry.attempts tries to a dead port', async () => {
    const port = await deadPort();
    proxy = await startProxy(connectYaml(port));
    const answer = await open(proxy, `127.0.0.1:${port}`);
    expect(answer.status).toBe(502);
    expect(answer.headers['x-reprise-error']).toBe('connect-failure');
    expect(answer.headers['x-reprise-attempts']).toBe('3');
    expect(JSON.parse(await readText(answer.socket))).toEqual({
      error: 'connect-failure',
      message: 'could not connect to the upstream',
      attempts: 3,
      upstream: `127.0.0.1:${port}`,
    });
    expect(await tunnelCount(proxy, `127.0.0.1:${port}`, 'connect-failure')).toBe(1);
  });

  it('answers 503 circuit-open with Retry-After once the upstream breaker tripped', async () => {
    const port = await deadPort();
    proxy = await startProxy(
      connectYaml(
        port,
        'defaults:\n  upstream:\n    circuitBreaker: { consecutiveFailures: 1, failingFor: 0ms, openFor: 5s }\n',
      ),
    );
    expect((await open(proxy, `127.0.0.1:${port}`)).status).toBe(502);
    const answer = await open(proxy, `127.0.0.1:${port}`);
    expect(answer.status).toBe(503);
    expect(answer.headers['x-reprise-error']).toBe('circuit-open');
    expect(Number(answer.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(await tunnelCount(proxy, `127.0.0.1:${port}`, 'circuit-open')).toBe(1);
  });

  it('stops retrying the connect at once when the client goes away', async () => {
    const port = await deadPort();
    const clock = manualClock();
    proxy = await startProxy(connectRetryYaml(port, '400ms'), clock.options);
    const px = proxy;
    const client = connect({ port: px.port, host: '127.0.0.1' });
    clients.push(client);
    client.on('error', () => {});
    client.write(connectRequest(`127.0.0.1:${port}`));
    await until(() => retryLines(px) === 1);
    client.destroy();
    // the back-off ends when the client leaves, with no time passing on the proxy's clock
    await vi.waitFor(async () =>
      expect(await tunnelCount(px, `127.0.0.1:${port}`, 'client-gone')).toBe(1),
    );
    expect(clock.armed).toBe(0);
    tcp = await startTcp(echo, port);
    await clock.advance(5_000);
    expect(tcp.sockets).toHaveLength(0);
    expect(retryLines(px)).toBe(1);
  });

  it('closes both sides after connect.idleTimeout without traffic', async () => {
    const { up, px, authority } = await setup(echo, '  idleTimeout: 200ms\n');
    const answer = await open(px, authority);
    answer.socket.resume();
    const startedMs = Date.now();
    await closed(answer.socket);
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(150);
    await closed(up.sockets[0] as Socket);
  });

  it('closes the client side when the upstream side dies', async () => {
    const { up, px, authority } = await setup();
    const answer = await open(px, authority);
    await expectCarried(answer.socket);
    (up.sockets[0] as Socket).destroy();
    expect(await readText(answer.socket)).toBe('');
    expectEnded(answer.socket);
  });

  it('closes the upstream side when the client side dies', async () => {
    const { up, px, authority } = await setup();
    const answer = await open(px, authority);
    await expectCarried(answer.socket);
    const upstreamSide = up.sockets[0] as Socket;
    answer.socket.destroy();
    await closed(upstreamSide);
    expectEnded(upstreamSide);
  });

  it('closes open tunnels when the proxy stops', async () => {
    const { up, px, authority } = await setup();
    const answer = await open(px, authority);
    await expectCarried(answer.socket);
    await px.close();
    proxy = undefined;
    expect(await readText(answer.socket)).toBe('');
    expectEnded(answer.socket);
    const upstreamSide = up.sockets[0] as Socket;
    await closed(upstreamSide);
    expectEnded(upstreamSide);
  });

  it('answers 403 without connecting when the address is in access.deniedUpstreams', async () => {
    const { up, px, authority } = await setup(echo, 'access:\n  deniedUpstreams: [127.0.0.0/8]\n');
    const answer = await open(px, authority);
    expect(answer.status).toBe(403);
    expect(answer.headers['x-reprise-error']).toBe('forbidden');
    await vi.waitFor(() => expect(px.requests()).toHaveLength(1));
    expect(px.requests()[0]).toMatchObject({ method: 'CONNECT', status: 403, error: 'forbidden' });
    expect(px.requests()[0]).not.toHaveProperty('upstreamAddress');
    expect(up.sockets).toHaveLength(0);
  });

  it('answers 508 loop to a CONNECT aimed at its own listen address', async () => {
    const port = await deadPort();
    const config = loadConfigText(
      `version: 1\nlisten: 127.0.0.1:${port}\nadmin: 127.0.0.1:0\nconnect:\n  allowedPorts: [${port}]\n`,
      'loop.yaml',
    );
    const app = await startApp(config, { logger: createLogger({ level: 'silent' }) });
    try {
      const answer = await sendRaw(port, connectRequest(`127.0.0.1:${port}`));
      clients.push(answer.socket);
      expect(answer.status).toBe(508);
      expect(answer.headers['x-reprise-error']).toBe('loop');
    } finally {
      await app.stop();
    }
  });
});
