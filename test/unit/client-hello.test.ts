import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyTunnelStart, MAX_PEEK_BYTES } from '../../src/tls/client-hello.ts';
import { hasOpenssl } from '../helpers/tls.ts';

/** A loopback port that keeps the first bytes each client sends (a real ClientHello). */
let server: Server;
let captured: (bytes: Buffer) => void = () => {};

beforeAll(async () => {
  server = createServer((socket) => {
    socket.once('data', (bytes) => {
      captured(bytes);
      socket.destroy();
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterAll(() => server.close());

const port = () => (server.address() as { port: number }).port;

function nextHello(): Promise<Buffer> {
  return new Promise((resolve) => {
    captured = resolve;
  });
}

async function nodeHello(options: { servername?: string; ALPNProtocols?: string[] }) {
  const hello = nextHello();
  const socket = connect({ host: '127.0.0.1', port: port(), ...options });
  socket.on('error', () => {});
  const bytes = await hello;
  socket.destroy();
  return bytes;
}

async function opensslHello(args: string[]) {
  const hello = nextHello();
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port()}`, ...args], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  const bytes = await hello;
  child.kill();
  return bytes;
}

describe('classifyTunnelStart on real ClientHellos', () => {
  it('reads the SNI and ALPN of a node:tls hello', async () => {
    const bytes = await nodeHello({
      servername: 'API.Partner.example',
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    expect(classifyTunnelStart(bytes)).toEqual({
      kind: 'tls',
      serverName: 'api.partner.example',
      alpn: ['h2', 'http/1.1'],
    });
  });

  it('reads a node:tls hello with no SNI and no ALPN', async () => {
    const bytes = await nodeHello({});
    expect(classifyTunnelStart(bytes)).toEqual({ kind: 'tls', serverName: undefined, alpn: [] });
  });

  it.skipIf(!hasOpenssl())('reads the SNI and ALPN of an openssl s_client hello', async () => {
    const bytes = await opensslHello(['-servername', 'bucket.s3.amazonaws.com', '-alpn', 'h2']);
    expect(classifyTunnelStart(bytes)).toEqual({
      kind: 'tls',
      serverName: 'bucket.s3.amazonaws.com',
      alpn: ['h2'],
    });
  });

  it.skipIf(!hasOpenssl())('reads an openssl TLS 1.2 hello without SNI', async () => {
    const bytes = await opensslHello(['-noservername', '-tls1_2']);
    expect(classifyTunnelStart(bytes)).toEqual({ kind: 'tls', serverName: undefined, alpn: [] });
  });

  it('asks for more while any prefix of a hello is short', async () => {
    const bytes = await nodeHello({ servername: 'a.example' });
    for (const size of [1, 2, 5, 40, bytes.length - 1]) {
      expect(classifyTunnelStart(bytes.subarray(0, size))).toEqual({ kind: 'more' });
    }
  });
});

describe('classifyTunnelStart on other bytes', () => {
  it('takes an HTTP/1.1 request line for plain HTTP', () => {
    expect(classifyTunnelStart(Buffer.from('GET /x HTTP/1.1\r\n'))).toEqual({ kind: 'http' });
    expect(classifyTunnelStart(Buffer.from('DELETE '))).toEqual({ kind: 'http' });
  });

  it('asks for more while the method is still arriving', () => {
    expect(classifyTunnelStart(Buffer.from('OPTI'))).toEqual({ kind: 'more' });
  });

  it('does not take the HTTP/2 preface or lower-case words for HTTP', () => {
    expect(classifyTunnelStart(Buffer.from('PRI * HTTP/2.0\r\n'))).toEqual({ kind: 'other' });
    expect(classifyTunnelStart(Buffer.from('get / HTTP/1.1'))).toEqual({ kind: 'other' });
    expect(classifyTunnelStart(Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'))).toEqual({
      kind: 'other',
    });
    expect(classifyTunnelStart(Buffer.from('ABCDEFGHIJKLMNOPQRSTU'))).toEqual({ kind: 'other' });
  });

  it('passes on garbage that starts like a TLS record', () => {
    expect(classifyTunnelStart(Buffer.from([0x16, 0x07, 0, 0, 0]))).toEqual({ kind: 'other' });
    // a handshake record that is not a ClientHello
    expect(classifyTunnelStart(Buffer.from([0x16, 3, 1, 0, 4, 2, 0, 0, 0]))).toEqual({
      kind: 'other',
    });
    // a hello whose length runs past its record
    expect(classifyTunnelStart(Buffer.from([0x16, 3, 1, 0, 4, 1, 0, 1, 0]))).toEqual({
      kind: 'other',
    });
  });

  it('refuses a record longer than 16 KiB without waiting for it', () => {
    const header = Buffer.from([0x16, 3, 1, 0x40, 0x01]);
    expect(classifyTunnelStart(header)).toEqual({ kind: 'other' });
    expect(MAX_PEEK_BYTES).toBe(5 + 16 * 1024);
  });

  it('passes on a truncated hello body inside a whole record', () => {
    const body = Buffer.from([1, 0, 0, 6, 3, 3, 0, 0, 0, 0]);
    const record = Buffer.concat([Buffer.from([0x16, 3, 1, 0, body.length]), body]);
    expect(classifyTunnelStart(record)).toEqual({ kind: 'other' });
  });
});
