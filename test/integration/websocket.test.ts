import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { type RawAnswer, readText, sendRaw } from '../helpers/raw-head.ts';
import { hasOpenssl, makeUpstreamCertificates } from '../helpers/tls.ts';
import { deadPort } from '../helpers/upstream.ts';

type OnUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer) => void;

interface UpgradeUpstream {
  readonly port: number;
  readonly seen: IncomingMessage[];
  readonly sockets: Socket[];
  close(): Promise<void>;
}

/** A node:http server whose 'upgrade' event runs `onUpgrade`; records every handshake. */
async function startUpgradeUpstream(onUpgrade: OnUpgrade = rawEcho): Promise<UpgradeUpstream> {
  const seen: IncomingMessage[] = [];
  const sockets: Socket[] = [];
  const server: Server = createServer((_req, res) => res.end('no upgrade asked'));
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    seen.push(req);
    sockets.push(socket);
    socket.on('error', () => {});
    onUpgrade(req, socket, head);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    sockets,
    async close() {
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Switches to a made-up `echo` protocol and echoes raw bytes (the early ones included). */
function rawEcho(_req: IncomingMessage, socket: Socket, head: Buffer): void {
  socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
  if (head.length > 0) socket.write(head);
  socket.pipe(socket);
}

/** A minimal RFC 6455 echo: the handshake, then every (small, masked) frame sent back unmasked. */
function webSocketEcho(req: IncomingMessage, socket: Socket): void {
  const accept = createHash('sha1')
    .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
    .digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 6) {
      const opcode = (buffered[0] as number) & 0x0f;
      const length = (buffered[1] as number) & 0x7f; // < 126: the test sends short messages
      if (buffered.length < 6 + length) return;
      const mask = buffered.subarray(2, 6);
      const payload = Buffer.from(
        buffered.subarray(6, 6 + length).map((b, i) => b ^ (mask[i % 4] as number)),
      );
      buffered = buffered.subarray(6 + length);
      socket.write(Buffer.concat([Buffer.from([0x80 | opcode, length]), payload]));
      if (opcode === 8) socket.end();
    }
  });
}

const upgradeRequest = (url: string, extra = '') =>
  `GET ${url} HTTP/1.1\r\nHost: ignored\r\nConnection: Upgrade\r\nUpgrade: echo\r\n${extra}\r\n`;

let proxy: TestProxy | undefined;
let upstream: UpgradeUpstream | undefined;
const clients: Socket[] = [];
afterEach(async () => {
  for (const socket of clients.splice(0)) socket.destroy();
  await proxy?.close();
  await upstream?.close();
  proxy = undefined;
  upstream = undefined;
});

async function setup(onUpgrade?: OnUpgrade, yaml = '') {
  upstream = await startUpgradeUpstream(onUpgrade);
  proxy = await startProxy(yaml);
  return { up: upstream, px: proxy, origin: `http://127.0.0.1:${upstream.port}` };
}

async function send(px: TestProxy, request: string): Promise<RawAnswer> {
  const answer = await sendRaw(px.port, request);
  clients.push(answer.socket);
  return answer;
}

describe('Upgrade pass-through (SPEC §6)', () => {
  it('switches protocols through the proxy port and carries bytes both ways', async () => {
    const { px, origin } = await setup();
    const answer = await send(px, upgradeRequest(`${origin}/chat`));
    expect(answer.status).toBe(101);
    expect(answer.headers.connection).toBe('Upgrade');
    expect(answer.headers.upgrade).toBe('echo');
    expect(answer.headers.via).toMatch(/^1\.1 reprise-[0-9a-f]+$/);
    answer.socket.write('round trip');
    expect(await readText(answer.socket, 10)).toBe('round trip');
  });

  it('forwards Connection and Upgrade, drops x-reprise-* and Proxy-Authorization, appends Via', async () => {
    const { up, px, origin } = await setup();
    const extra =
      'x-reprise-retry: off\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nVia: 1.1 other\r\nX-App: kept\r\n';
    expect((await send(px, upgradeRequest(`${origin}/chat?room=1`, extra))).status).toBe(101);
    const seen = up.seen[0] as IncomingMessage;
    expect(seen.url).toBe('/chat?room=1');
    expect(seen.headers.host).toBe(`127.0.0.1:${up.port}`);
    expect(seen.headers.connection).toBe('upgrade');
    expect(seen.headers.upgrade).toBe('echo');
    expect(seen.headers['x-reprise-retry']).toBeUndefined();
    expect(seen.headers['proxy-authorization']).toBeUndefined();
    expect(seen.headers.via).toMatch(/^1\.1 other, 1\.1 reprise-[0-9a-f]+$/);
    expect(seen.headers['x-app']).toBe('kept');
  });

  it('delivers bytes the client sent right after its handshake', async () => {
    const { px, origin } = await setup();
    const answer = await send(px, `${upgradeRequest(`${origin}/`)}early`);
    expect(answer.status).toBe(101);
    expect(await readText(answer.socket, 5)).toBe('early');
  });

  it('relays an upstream that declines the switch, once, without retrying its 503', async () => {
    const { up, px, origin } = await setup((_req, socket) =>
      socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy'),
    );
    const answer = await send(px, upgradeRequest(`${origin}/`));
    expect(answer.status).toBe(503);
    expect(answer.headers['x-reprise-error']).toBeUndefined();
    expect(await readText(answer.socket)).toBe('busy');
    expect(up.seen).toHaveLength(1);
  });

  it('answers 502 connect-failure when nothing listens upstream', async () => {
    proxy = await startProxy();
    const answer = await send(proxy, upgradeRequest(`http://127.0.0.1:${await deadPort()}/`));
    expect(answer.status).toBe(502);
    expect(answer.headers['x-reprise-error']).toBe('connect-failure');
    expect(JSON.parse(await readText(answer.socket))).toMatchObject({ attempts: 1 });
  });

  it('answers 504 timeout once x-reprise-timeout-ms passes without a switch', async () => {
    // the route allows a minute per try; the client's header narrows this Upgrade to 100 ms
    const yaml = 'defaults:\n  route:\n    timeout: 1m\n    retry: { perTryTimeout: 1m }\n';
    const { up, px, origin } = await setup(() => {}, yaml);
    const answer = await send(
      px,
      upgradeRequest(`${origin}/chat`, 'x-reprise-timeout-ms: 100\r\n'),
    );
    expect(answer.status).toBe(504);
    expect(answer.headers['x-reprise-error']).toBe('timeout');
    expect(up.seen).toHaveLength(1);
    expect(up.seen[0]?.headers['x-reprise-timeout-ms']).toBeUndefined();
  });

  it('answers 400 to an origin-form Upgrade on the proxy port', async () => {
    const { up, px } = await setup();
    const answer = await send(px, upgradeRequest('/chat'));
    expect(answer.status).toBe(400);
    expect(answer.headers['x-reprise-error']).toBe('bad-request');
    expect(up.seen).toHaveLength(0);
  });

  it('closes the client side when the upstream closes the switched connection', async () => {
    const { up, px, origin } = await setup();
    const answer = await send(px, upgradeRequest(`${origin}/`));
    expect(answer.status).toBe(101);
    (up.sockets[0] as Socket).destroy();
    await readText(answer.socket);
    expect(answer.socket.readableEnded || answer.socket.destroyed).toBe(true);
  });

  it("echoes a message from Node's WebSocket client through a listener port", async () => {
    upstream = await startUpgradeUpstream(webSocketEcho);
    proxy = await startProxy(
      `listeners:\n  - listen: 127.0.0.1:0\n    upstream: http://127.0.0.1:${upstream.port}\n`,
    );
    const socket = new WebSocket(`ws://127.0.0.1:${proxy.app.listenerPorts[0]}/ws`);
    try {
      await once(socket, 'open');
      socket.send('hello websocket');
      const [message] = (await once(socket, 'message')) as [MessageEvent];
      expect(message.data).toBe('hello websocket');
      expect(upstream.seen[0]?.headers.upgrade).toBe('websocket');
    } finally {
      socket.close();
    }
  });

  it.skipIf(!hasOpenssl())(
    'dials an upstream with tls on its TLS port: an http:// Upgrade is switched over verified TLS',
    async () => {
      const certs = makeUpstreamCertificates();
      const secure = createTlsServer({ ...certs.server });
      const seen: IncomingMessage[] = [];
      const switched: Socket[] = [];
      secure.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
        seen.push(req);
        switched.push(socket);
        rawEcho(req, socket, head);
      });
      secure.listen(0, '127.0.0.1');
      await once(secure, 'listening');
      const tlsPort = (secure.address() as AddressInfo).port;
      const dir = mkdtempSync(join(tmpdir(), 'reprise-ws-tls-'));
      const caFile = join(dir, 'ca.pem');
      writeFileSync(caFile, certs.ca);
      // the app calls a port where nothing listens: only the TLS port can answer
      const calledPort = await deadPort();
      try {
        proxy = await startProxy(
          `upstreams:\n  - match: "localhost:${calledPort}"\n    tls: { port: ${tlsPort}, ca: ${caFile} }\n`,
        );
        const answer = await send(proxy, upgradeRequest(`http://localhost:${calledPort}/chat`));
        expect(answer.status).toBe(101);
        expect(seen).toHaveLength(1);
        expect((switched[0] as { encrypted?: boolean } | undefined)?.encrypted).toBe(true);
      } finally {
        for (const socket of switched) socket.destroy();
        secure.closeAllConnections();
        await new Promise((resolve) => secure.close(resolve));
        certs.remove();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
