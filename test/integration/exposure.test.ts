/**
 * What reprise exposes: it never forwards to itself (every spelling of its own address, and
 * its Via), never connects to a denied upstream address (whatever the spelling, whatever a
 * name resolves to), and passes answers through untouched: no decompression, no redirect
 * following, so a gzip bomb costs nothing.
 */
import { once } from 'node:events';
import { BlockList } from 'node:net';
import { hostname } from 'node:os';
import { createGzip, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../src/app.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log.ts';
import { DeniedAddressError, guardedLookup } from '../../src/proxy/upstream/address-guard.ts';
import { isDenied } from '../../src/routing/address-list.ts';
import { ownAuthorities } from '../../src/routing/target.ts';
import { startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import { deadPort, reply, startUpstream, type Upstream } from '../helpers/upstream.ts';

let proxy: TestProxy | undefined;
let app: App | undefined;
let upstream: Upstream | undefined;
afterEach(async () => {
  await proxy?.close();
  await app?.stop();
  await upstream?.close();
  proxy = app = upstream = undefined;
});

describe('loop detection', () => {
  const SPELLINGS = [
    '127.0.0.1',
    'localhost',
    'LOCALHOST',
    'localhost.',
    'api.localhost',
    '127.0.0.2',
    '127.1',
    '0x7f.1',
    '0x7f000001',
    '2130706433',
    '017700000001',
    '0177.0.0.1',
    '0.0.0.0',
    '[::1]',
    '[0:0:0:0:0:0:0:1]',
    '[::ffff:127.0.0.1]',
    '[::ffff:7f00:1]',
    '[::]',
  ];

  it('answers 508 at once to every spelling of its own address', async () => {
    // a fixed port: the loop check compares the configured listen port
    const port = await deadPort();
    const config = loadConfigText(
      `version: 1\nlisten: 127.0.0.1:${port}\nadmin: 127.0.0.1:0\n`,
      'loop.yaml',
    );
    app = await startApp(config, { logger: createLogger({ level: 'silent' }) });
    for (const host of SPELLINGS) {
      const res = await viaProxy(port, 'GET', `http://${host}:${port}/`);
      expect({ host, status: res.status }).toEqual({ host, status: 508 });
      // refused on arrival, not after a round trip through itself (that would say "0, 1")
      expect(res.headers['x-reprise-attempts']).toBe('0');
    }
  });

  it('forwards to another port of the same host', async () => {
    upstream = await startUpstream([reply(200, 'not me')]);
    proxy = await startProxy();
    const res = await viaProxy(proxy.port, 'GET', `http://0x7f.1:${upstream.port}/`);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('not me');
  });

  it('answers 508 to a request that carries its Via among others', async () => {
    upstream = await startUpstream([reply(200)]);
    proxy = await startProxy();
    const first = await viaProxy(proxy.port, 'GET', `${upstream.origin}/`);
    const own = String(first.headers.via).split(', ').at(-1) as string;
    const res = await viaProxy(proxy.port, 'GET', `${upstream.origin}/`, {
      headers: { via: `1.0 edge, ${own}, 1.1 other` },
    });
    expect(res.status).toBe(508);
    expect(upstream.seen).toHaveLength(1);
  });

  it('knows every spelling from the listen addresses alone', () => {
    const own = ownAuthorities([{ host: '0.0.0.0', port: 3128 }]);
    expect(own.has(`${hostname()}:3128`)).toBe(true);
    expect(own.has('[::ffff:7f00:1]:3128')).toBe(true);
    expect(own.has('127.9.9.9:3128')).toBe(true);
    expect(own.has('127.0.0.1:3129')).toBe(false);
    expect(own.has('example.com:3128')).toBe(false);
    const specific = ownAuthorities([{ host: '10.1.2.3', port: 8080 }]);
    expect(specific.has('10.1.2.3:8080')).toBe(true);
    expect(specific.has('0xa.1.2.3:8080')).toBe(true);
    expect(specific.has('10.1.2.4:8080')).toBe(false);
  });
});

const DENY_LOOPBACK = 'access:\n  deniedUpstreams: [127.0.0.0/8, ::1/128]\n';

describe('denied upstream addresses', () => {
  it.each(['127.0.0.1', 'localhost', '127.1', '0x7f.1', '2130706433', '[::ffff:127.0.0.1]'])(
    'answers 403 and never connects: %s',
    async (host) => {
      upstream = await startUpstream([reply(200)]);
      proxy = await startProxy(DENY_LOOPBACK);
      const res = await viaProxy(proxy.port, 'POST', `http://${host}:${upstream.port}/`, {
        body: 'x',
      });
      expect(res.status).toBe(403);
      expect(res.headers['x-reprise-error']).toBe('forbidden');
      expect(JSON.parse(res.body.toString()).message).toMatch(/deniedUpstreams/);
      expect(upstream.connections).toBe(0);
      expect(proxy.requests()[0]).toMatchObject({ status: 403, error: 'forbidden' });
    },
  );

  it('forwards to addresses outside the list', async () => {
    upstream = await startUpstream([reply(200, 'ok')]);
    proxy = await startProxy('access:\n  deniedUpstreams: [127.0.0.2/32]\n');
    const res = await viaProxy(proxy.port, 'GET', `${upstream.origin}/`);
    expect(res.status).toBe(200);
  });

  it('stops using pooled connections to an address a reload denies', async () => {
    upstream = await startUpstream([reply(200, 'ok')]);
    proxy = await startProxy();
    expect((await viaProxy(proxy.port, 'GET', `${upstream.origin}/`)).status).toBe(200);
    const text = `version: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\n${DENY_LOOPBACK}`;
    proxy.app.reload(loadConfigText(text, 'reload.yaml'));
    const res = await viaProxy(proxy.port, 'GET', `${upstream.origin}/`);
    expect(res.status).toBe(403);
    expect(upstream.seen).toHaveLength(1);
  });

  it('checks every spelling of an address as the address it reaches', () => {
    const list = new BlockList();
    list.addAddress('169.254.169.254', 'ipv4');
    list.addSubnet('fe80::', 10, 'ipv6');
    for (const spelling of [
      '169.254.169.254',
      '::ffff:169.254.169.254',
      '::ffff:a9fe:a9fe',
      '[::FFFF:A9FE:A9FE]',
      '0:0:0:0:0:ffff:a9fe:a9fe',
      'fe80::1%eth0',
      'not-an-address',
    ]) {
      expect({ spelling, denied: isDenied(list, spelling) }).toEqual({ spelling, denied: true });
    }
    expect(isDenied(list, '169.254.169.253')).toBe(false);
    expect(isDenied(list, '::ffff:a9fe:a9fd')).toBe(false);
    expect(isDenied(undefined, '169.254.169.254')).toBe(false);
  });

  it('fails a lookup whose every address is denied', async () => {
    const list = new BlockList();
    list.addSubnet('127.0.0.0', 8, 'ipv4');
    list.addAddress('::1', 'ipv6');
    const error = await new Promise((resolve) =>
      guardedLookup(list)('localhost', { all: true }, (err) => resolve(err)),
    );
    expect(error).toBeInstanceOf(DeniedAddressError);
  });
});

describe('answers pass through untouched', () => {
  it('relays a gzip answer byte for byte, still encoded', async () => {
    const gzipped = gzipSync(Buffer.from('hello '.repeat(1000)));
    upstream = await startUpstream([
      reply(200, gzipped, {
        'content-encoding': 'gzip',
        'content-type': 'text/plain',
        'content-length': String(gzipped.length),
      }),
    ]);
    proxy = await startProxy();
    const res = await viaProxy(proxy.port, 'GET', `${upstream.origin}/`, {
      headers: { 'accept-encoding': 'gzip' },
    });
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(res.headers['content-length']).toBe(String(gzipped.length));
    expect(res.body.equals(gzipped)).toBe(true);
    expect(upstream.seen[0]?.headers['accept-encoding']).toBe('gzip');
  });

  it('passes a redirect to the client instead of following it', async () => {
    upstream = await startUpstream([reply(302, '', { location: '/elsewhere' }), reply(200)]);
    proxy = await startProxy();
    const res = await viaProxy(proxy.port, 'GET', `${upstream.origin}/`);
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('/elsewhere');
    expect(upstream.seen).toHaveLength(1);
  });

  it('passes a gzip bomb through as it is, at no memory cost', async () => {
    const bomb = await gzipZeros(1024 * 1024 * 1024);
    upstream = await startUpstream([reply(200, bomb, { 'content-encoding': 'gzip' })]);
    proxy = await startProxy();
    const rssBefore = process.memoryUsage.rss();
    const res = await viaProxy(proxy.port, 'GET', `${upstream.origin}/`);
    const growthBytes = process.memoryUsage.rss() - rssBefore;
    expect(res.body.equals(bomb)).toBe(true);
    expect(bomb.length).toBeLessThan(2 * 1024 * 1024);
    // decompressed it would be 1 GiB
    expect(growthBytes).toBeLessThan(64 * 1024 * 1024);
  }, 30_000);
});

/** A gzip stream of `bytes` zero bytes (about 1/1000 of that on the wire). */
async function gzipZeros(bytes: number): Promise<Buffer> {
  const gzip = createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
  const zeros = Buffer.alloc(1024 * 1024);
  for (let written = 0; written < bytes; written += zeros.length) {
    if (!gzip.write(zeros)) await once(gzip, 'drain');
  }
  gzip.end();
  await once(gzip, 'end');
  return Buffer.concat(chunks);
}
