/**
 * The dialer's TLS (SPEC §3, §6), at the upstream client: real `node:https` servers with a
 * test CA made in the test, failing on cue. A verified handshake keeps its connection alive;
 * a certificate that fails verification is `upstream-certificate` (never retried); a
 * handshake that hangs is `connect-failure` (nothing was sent: any method may retry).
 */
import { once } from 'node:events';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { type AddressInfo, createServer as createTcpServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamTls } from '../../src/config/types.ts';
import { BufferPool } from '../../src/proxy/buffer-pool.ts';
import { Dialer } from '../../src/proxy/upstream/dialer.ts';
import { type TryRequest, UpstreamClient } from '../../src/proxy/upstream/upstream-client.ts';
import { decideRetry } from '../../src/retry/decide.ts';
import { resolveRequestPolicy } from '../../src/retry/request-policy.ts';
import type { HandshakeResult } from '../../src/vocabulary.ts';
import { makeRoutePolicy } from '../helpers/policy-factory.ts';
import {
  hasOpenssl,
  type KeyPair,
  makeUpstreamCertificates,
  type UpstreamCertificates,
} from '../helpers/tls.ts';

let certs: UpstreamCertificates;
const closers: (() => Promise<void> | void)[] = [];

beforeAll(() => {
  certs = makeUpstreamCertificates();
});
afterAll(() => certs?.remove());
afterEach(async () => {
  for (let close = closers.pop(); close !== undefined; close = closers.pop()) await close();
});

interface TlsUpstream {
  readonly port: number;
  /** TCP connections accepted. */
  accepted(): number;
  /** Handshakes completed, and how many of them resumed a session. */
  readonly handshakes: { total: number; resumed: number; servernames: (string | false)[] };
}

/** An HTTPS server answering 200 `ok`, or `closeAfter` then closing each connection. */
async function startTlsUpstream(
  pair: KeyPair,
  options: { requestCert?: boolean; closeEach?: boolean } = {},
): Promise<TlsUpstream> {
  let accepted = 0;
  const handshakes = { total: 0, resumed: 0, servernames: [] as (string | false)[] };
  const server: HttpsServer = createHttpsServer(
    {
      ...pair,
      ca: certs.ca,
      requestCert: options.requestCert === true,
      rejectUnauthorized: options.requestCert === true,
    },
    (req, res) => {
      req.resume();
      if (options.closeEach === true) res.setHeader('connection', 'close');
      res.end('ok');
    },
  );
  server.on('connection', () => accepted++);
  server.on('secureConnection', (socket: TLSSocket) => {
    handshakes.total++;
    if (socket.isSessionReused()) handshakes.resumed++;
    handshakes.servernames.push(socket.servername ?? false);
  });
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, accepted: () => accepted, handshakes };
}

function tlsSettings(overrides: Partial<UpstreamTls> = {}): UpstreamTls {
  return {
    port: undefined,
    servername: undefined,
    ca: certs.ca,
    cert: undefined,
    key: undefined,
    files: {},
    id: 'test-ca',
    ...overrides,
  };
}

function startClient() {
  const results: HandshakeResult[] = [];
  const reasons: (string | undefined)[] = [];
  const dialer = new Dialer({
    onHandshake: (result, _target, error) => {
      results.push(result);
      reasons.push(error?.reason);
    },
  });
  const client = new UpstreamClient({ dialer });
  closers.push(() => client.close());
  return { client, dialer, handshakes: results, reasons };
}

const pool = new BufferPool(16 * 1024 * 1024);

function request(origin: string, tls: UpstreamTls, overrides: Partial<TryRequest> = {}) {
  return {
    origin,
    path: '/',
    method: 'GET',
    headers: ['host', new URL(origin).host],
    body: null,
    connectTimeoutMs: 2_000,
    tls,
    tryTimeoutMs: 10_000,
    holdBytes: 64 * 1024,
    bodyTimeoutMs: 2_000,
    streamIdleTimeoutMs: 2_000,
    pool,
    ...overrides,
  };
}

/** Sends one try; its status and body, or its failure name. */
async function send(client: UpstreamClient, req: TryRequest): Promise<string> {
  const result = await client.send(req).result;
  if (result.kind === 'denied') return 'denied';
  if (result.kind === 'failure') return result.failure;
  const body = Buffer.concat(result.response.takeHeld()).toString();
  return `${result.status} ${body}`;
}

describe.skipIf(!hasOpenssl())('TLS to upstreams, in the dialer', () => {
  it('verifies against the configured CA, with SNI, and keeps the connection alive', async () => {
    const up = await startTlsUpstream(certs.server);
    const { client, handshakes } = startClient();
    const origin = `https://localhost:${up.port}`;
    for (let i = 0; i < 300; i++) {
      expect(await send(client, request(origin, tlsSettings()))).toBe('200 ok');
    }
    expect(up.handshakes.total).toBeLessThanOrEqual(2);
    expect(up.handshakes.servernames[0]).toBe('localhost');
    expect(handshakes).toEqual(Array(up.handshakes.total).fill('ok'));
  });

  it('sends no SNI to an IP address and checks the address against the certificate', async () => {
    const up = await startTlsUpstream(certs.server);
    const { client } = startClient();
    expect(await send(client, request(`https://127.0.0.1:${up.port}`, tlsSettings()))).toBe(
      '200 ok',
    );
    expect(up.handshakes.servernames).toEqual([false]);
  });

  it('resumes the TLS session on a new connection', async () => {
    const up = await startTlsUpstream(certs.server, { closeEach: true });
    const { client } = startClient();
    const origin = `https://localhost:${up.port}`;
    for (let i = 0; i < 3; i++) {
      expect(await send(client, request(origin, tlsSettings()))).toBe('200 ok');
    }
    expect(up.handshakes.total).toBe(3);
    expect(up.handshakes.resumed).toBeGreaterThanOrEqual(1);
  });

  const BAD: [string, () => KeyPair, string][] = [
    ['an unknown issuer', () => certs.unknownIssuer, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    ['a wrong name', () => certs.wrongName, 'ERR_TLS_CERT_ALTNAME_INVALID'],
    ['an expired certificate', () => certs.expired, 'CERT_HAS_EXPIRED'],
  ];

  it.each(BAD)('names %s upstream-certificate, never retried', async (_name, pair, code) => {
    const up = await startTlsUpstream(pair());
    const { client, handshakes, reasons } = startClient();
    const req = request(`https://localhost:${up.port}`, tlsSettings());
    expect(await send(client, req)).toBe('upstream-certificate');
    expect(up.accepted()).toBe(1);
    expect(handshakes).toEqual(['upstream-certificate']);
    expect(reasons).toEqual([code]);
    const policy = resolveRequestPolicy(makeRoutePolicy(), 'GET', {}, Date.now());
    const result = { kind: 'failure', failure: 'upstream-certificate' } as const;
    const decision = decideRetry({
      policy,
      attempt: 1,
      result,
      body: 'replayable',
      nowMs: Date.now(),
      previousDelayMs: 0,
      random: () => 0.5,
    });
    expect(decision).toEqual({ retry: false, cause: undefined });
  });

  it('does not trust the test CA without `ca`: the public roots apply', async () => {
    const up = await startTlsUpstream(certs.server);
    const { client } = startClient();
    const req = request(`https://localhost:${up.port}`, tlsSettings({ ca: undefined, id: 'p' }));
    expect(await send(client, req)).toBe('upstream-certificate');
  });

  it('names a handshake that hangs connect-failure within connectTimeout; a POST may retry it', async () => {
    const sockets: Socket[] = [];
    const silent = createTcpServer((socket) => sockets.push(socket));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    closers.push(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    const { client, handshakes } = startClient();
    const port = (silent.address() as AddressInfo).port;
    const pending = client.send(
      request(`https://localhost:${port}`, tlsSettings(), {
        method: 'POST',
        connectTimeoutMs: 150,
        tryTimeoutMs: 60_000,
      }),
    );
    const result = await pending.result;
    expect(result).toMatchObject({ kind: 'failure', failure: 'connect-failure' });
    expect((result as { error: Error }).error.message).toMatch(/connectTimeout/);
    expect(sockets).toHaveLength(1);
    expect(handshakes).toEqual(['connect-failure']);
    // nothing was sent: even a POST, not a retryable method, may retry it (SPEC §3)
    const policy = resolveRequestPolicy(makeRoutePolicy(), 'POST', {}, Date.now());
    expect(policy.methodRetryable).toBe(false);
    const decision = decideRetry({
      policy,
      attempt: 1,
      result: { kind: 'failure', failure: 'connect-failure' },
      body: 'replayable',
      nowMs: Date.now(),
      previousDelayMs: 0,
      random: () => 0.5,
    });
    expect(decision).toMatchObject({ retry: true, reason: 'connect-failure' });
  });

  it('presents a client certificate for mutual TLS', async () => {
    const up = await startTlsUpstream(certs.server, { requestCert: true });
    const { client } = startClient();
    const tls = tlsSettings({ ...certs.client, id: 'mutual' });
    expect(await send(client, request(`https://localhost:${up.port}`, tls))).toBe('200 ok');
  });

  it('fails a try to a server that demands a client certificate, without one', async () => {
    const up = await startTlsUpstream(certs.server, { requestCert: true });
    const { client, handshakes } = startClient();
    const outcome = await send(client, request(`https://localhost:${up.port}`, tlsSettings()));
    // TLS 1.3: reprise's side of the handshake is done before the server checks the client's
    // certificate, so the refusal arrives as the connection closing after the request went out
    expect(handshakes).toEqual(['ok']);
    expect(outcome).toBe('reset');
    expect(up.handshakes.total).toBe(0);
  });
});
