/**
 * TLS origination (SPEC §6) against real HTTPS upstreams with a CA made in the test, and real
 * clients: curl, Python requests and undici call `http://` through the proxy port or a
 * listener, and reprise speaks verified TLS upstream.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { type HttpsUpstream, startHttpsUpstream } from '../helpers/https-upstream.ts';
import { FAST, startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import { hasOpenssl, makeCa, makeLeaf, type TlsFixture, tlsFixture } from '../helpers/tls.ts';
import { echo, reply } from '../helpers/upstream.ts';

closeAfterEach();

const skip = !hasOpenssl();

interface Pem {
  readonly cert: string;
  readonly key: string;
}
let fixture: TlsFixture;
let caFile: string;
let server: Pem;
let stranger: Pem;
let clientCaFile: string;
let clientFiles: { certFile: string; keyFile: string };

const pem = (files: { certFile: string; keyFile: string }): Pem => ({
  cert: readFileSync(files.certFile, 'utf8'),
  key: readFileSync(files.keyFile, 'utf8'),
});

beforeAll(() => {
  if (!hasOpenssl()) return;
  fixture = tlsFixture();
  const ca = makeCa(fixture, 'ca');
  caFile = ca.certFile;
  server = pem(makeLeaf(fixture, ca, 'server'));
  const otherCa = makeCa(fixture, 'other-ca');
  stranger = pem(makeLeaf(fixture, otherCa, 'stranger'));
  const clientCa = makeCa(fixture, 'client-ca');
  clientCaFile = clientCa.certFile;
  clientFiles = makeLeaf(fixture, clientCa, 'client', { usage: 'clientAuth' });
});
afterAll(() => fixture?.remove());

/** The app calls http://127.0.0.1:PORT; reprise speaks TLS to it, verifying `localhost`. */
function tlsRule(extra = ''): string {
  return `${FAST}upstreams:
  - match: 127.0.0.1
    tls: { ca: ${caFile}, servername: localhost${extra} }
`;
}

/** A child's environment with no proxy settings of the machine's own. */
const CLEAN_ENV = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: CLEAN_ENV, timeout: 20_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${file}: ${err.message}\n${stderr}`)) : resolve(stdout.trim()),
    );
  });
}

/** `status attempts` as each client saw them; `proxy` undefined: called directly. */
type Client = (url: string, proxy: string | undefined) => Promise<string>;

const clients: Record<string, Client> = {
  curl: (url, proxy) =>
    run('curl', [
      ...['-s', '-o', '/dev/null', '--noproxy', proxy === undefined ? '*' : ''],
      ...(proxy === undefined ? [] : ['--proxy', proxy]),
      ...['-w', '%{http_code} %header{x-reprise-attempts}', url],
    ]),
  'python requests': (url, proxy) =>
    run('python3', [
      '-c',
      'import sys, requests\n' +
        'p = {"http": sys.argv[2]} if len(sys.argv) > 2 else {}\n' +
        'r = requests.get(sys.argv[1], proxies=p)\n' +
        'print(r.status_code, r.headers.get("x-reprise-attempts"))',
      url,
      ...(proxy === undefined ? [] : [proxy]),
    ]),
  undici: async (url, proxy) => {
    const dispatcher =
      proxy === undefined ? undefined : new ProxyAgent({ uri: proxy, proxyTunnel: false });
    try {
      const res = await request(url, { dispatcher });
      await res.body.dump();
      return `${res.statusCode} ${res.headers['x-reprise-attempts']}`;
    } finally {
      await dispatcher?.close();
    }
  },
};

async function flakyUpstream(): Promise<HttpsUpstream> {
  return startHttpsUpstream([reply(503), reply(503), reply(200, 'ok')], server);
}

describe.skipIf(skip)('TLS origination through the proxy port', () => {
  it.each(Object.keys(clients))('heals 503, 503, 200 for %s calling http://', async (name) => {
    const up = await flakyUpstream();
    const proxy = await startProxy(tlsRule());
    const said = await (clients[name] as Client)(
      `http://127.0.0.1:${up.port}/v1`,
      `http://127.0.0.1:${proxy.port}`,
    );
    expect(said).toBe('200 3');
    expect(up.seen.map((s) => s.headers['x-reprise-attempt'])).toEqual(['1', '2', '3']);
    expect(proxy.requests()[0]).toMatchObject({ status: 200, attempts: 3, tls: true });
  });

  it('replays a 256 KiB PUT body over TLS byte for byte', async () => {
    const up = await startHttpsUpstream([reply(503), reply(503), echo()], server);
    const proxy = await startProxy(tlsRule());
    const body = randomBytes(256 * 1024);
    const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
    const res = await viaProxy(proxy.port, 'PUT', `http://127.0.0.1:${up.port}/blob`, { body });
    expect(res.status).toBe(200);
    expect(res.headers['x-reprise-attempts']).toBe('3');
    expect(up.seen.map((s) => sha(s.body))).toEqual([sha(body), sha(body), sha(body)]);
    expect(sha(res.body)).toBe(sha(body));
  });

  it('answers 502 upstream-certificate at once, tried once, for an unknown issuer', async () => {
    const up = await startHttpsUpstream([reply(200, 'ok')], stranger);
    const proxy = await startProxy(tlsRule());
    const res = await viaProxy(proxy.port, 'GET', `http://127.0.0.1:${up.port}/`);
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-error']).toBe('upstream-certificate');
    expect(res.headers['x-reprise-attempts']).toBe('1');
    expect(up.seen).toHaveLength(0);
  });

  it('needs at most 2 handshakes for 300 sequential requests', async () => {
    const up = await startHttpsUpstream([reply(200, 'ok')], server);
    const proxy = await startProxy(tlsRule());
    for (let i = 0; i < 300; i++) {
      const res = await viaProxy(proxy.port, 'GET', `http://127.0.0.1:${up.port}/${i}`);
      expect(res.status).toBe(200);
    }
    expect(up.seen).toHaveLength(300);
    expect(up.handshakes).toBeLessThanOrEqual(2);
  });

  it('shows the TLS that applies to an upstream in /state', async () => {
    const up = await startHttpsUpstream([reply(200, 'ok')], server);
    const proxy = await startProxy(tlsRule());
    await viaProxy(proxy.port, 'GET', `http://127.0.0.1:${up.port}/`);
    const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/state`);
    const state = (await res.json()) as { upstreams: unknown[] };
    expect(state.upstreams).toEqual([
      expect.objectContaining({
        authority: `127.0.0.1:${up.port}`,
        tls: { port: up.port, servername: 'localhost', ca: caFile, cert: 'none' },
      }),
    ]);
  });

  it('presents the client certificate to an upstream that demands one (mutual TLS)', async () => {
    const up = await startHttpsUpstream([reply(200, 'ok')], {
      ...server,
      clientCa: readFileSync(clientCaFile, 'utf8'),
    });
    const { certFile, keyFile } = clientFiles;
    const proxy = await startProxy(tlsRule(`, cert: ${certFile}, key: ${keyFile}`));
    const res = await viaProxy(proxy.port, 'GET', `http://127.0.0.1:${up.port}/`);
    expect(res.status).toBe(200);
    expect(up.clientNames).toEqual(['client']);
  });

  it('sends an absolute-form https:// request over TLS, with the CA of upstreams[].tls', async () => {
    const up = await flakyUpstream();
    const proxy = await startProxy(tlsRule());
    // node:http with an absolute-form path: curl, requests, urllib3 (with an http:// proxy)
    // and undici all tunnel https:// URLs instead
    const res = await viaProxy(proxy.port, 'GET', `https://127.0.0.1:${up.port}/v1`);
    expect(res.status).toBe(200);
    expect(res.headers['x-reprise-attempts']).toBe('3');
    expect(up.seen.map((s) => s.url)).toEqual(['/v1', '/v1', '/v1']);
    expect(proxy.requests()[0]).toMatchObject({ upstream: `127.0.0.1:${up.port}`, tls: true });
  });

  it('verifies an absolute-form https:// request against the public roots without a rule', async () => {
    const up = await startHttpsUpstream([reply(200, 'ok')], server);
    const proxy = await startProxy(FAST);
    const res = await viaProxy(proxy.port, 'GET', `https://127.0.0.1:${up.port}/`);
    // the test CA is not a public root
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-error']).toBe('upstream-certificate');
    expect(up.seen).toHaveLength(0);
  });
});

describe.skipIf(skip)('TLS origination through an https:// listener', () => {
  async function listening(up: HttpsUpstream): Promise<{ proxy: TestProxy; url: string }> {
    const proxy = await startProxy(
      `${tlsRule()}listeners:\n  - { listen: 127.0.0.1:0, upstream: "https://127.0.0.1:${up.port}" }\n`,
    );
    return { proxy, url: `http://127.0.0.1:${proxy.app.listenerPorts[0]}/v1` };
  }

  it.each(Object.keys(clients))('heals 503, 503, 200 for %s', async (name) => {
    const up = await flakyUpstream();
    const { proxy, url } = await listening(up);
    expect(await (clients[name] as Client)(url, undefined)).toBe('200 3');
    expect(up.seen.map((s) => s.headers.host)).toEqual([
      `127.0.0.1:${up.port}`,
      `127.0.0.1:${up.port}`,
      `127.0.0.1:${up.port}`,
    ]);
    expect(proxy.requests()[0]).toMatchObject({ upstream: `127.0.0.1:${up.port}`, tls: true });
  });
});
