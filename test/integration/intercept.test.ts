/**
 * Interception inside CONNECT tunnels (SPEC §6): real clients call `https://localhost:PORT`
 * through HTTPS_PROXY, trusting the CA reprise writes; reprise terminates their TLS, retries
 * inside, and speaks verified TLS to a real HTTPS upstream (its own CA, made in the test).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.ts';
import { closeAfterEach, closeLater } from '../helpers/close-after-each.ts';
import { startHttpsUpstream } from '../helpers/https-upstream.ts';
import { FAST, startProxy, type TestProxy } from '../helpers/proxy.ts';
import { hasOpenssl, makeCa, makeLeaf, type TlsFixture, tlsFixture } from '../helpers/tls.ts';
import { openTunnel, requestOn, tlsInTunnel } from '../helpers/tunnel-client.ts';
import { echo, reply } from '../helpers/upstream.ts';

closeAfterEach();

interface Pem {
  readonly cert: string;
  readonly key: string;
}
let fixture: TlsFixture;
/** The upstream's own CA (reprise trusts it for the upstream hop). */
let upstreamCaFile: string;
let server: Pem;
let stranger: Pem;
let dir: string;

const pem = (files: { certFile: string; keyFile: string }): Pem => ({
  cert: readFileSync(files.certFile, 'utf8'),
  key: readFileSync(files.keyFile, 'utf8'),
});

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'reprise-intercept-'));
  if (!hasOpenssl()) return;
  fixture = tlsFixture();
  const ca = makeCa(fixture, 'upstream-ca');
  upstreamCaFile = ca.certFile;
  server = pem(makeLeaf(fixture, ca, 'server'));
  stranger = pem(makeLeaf(fixture, makeCa(fixture, 'other-ca'), 'stranger'));
});
afterAll(() => {
  fixture?.remove();
  rmSync(dir, { recursive: true, force: true });
});

const caFile = () => join(dir, 'ca.crt');
const bundleFile = () => join(dir, 'bundle.crt');

/** Tunnels to localhost:PORT are intercepted; the upstream hop trusts the test's CA. */
function interceptConfig(port: number, extra = ''): string {
  return `${FAST}connect:
  allowedPorts: [${port}]
  intercept:
    hosts: [localhost]
    writeCa: ${caFile()}
    writeBundle: ${bundleFile()}
upstreams:
  - match: localhost
    tls: { ca: ${upstreamCaFile} }
${extra}`;
}

/** A child's environment with no proxy settings of the machine's own. */
const CLEAN_ENV = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };

function run(file: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: { ...CLEAN_ENV, ...env }, timeout: 30_000 }, (err, out, stderr) =>
      err ? reject(new Error(`${file}: ${err.message}\n${stderr}`)) : resolve(out.trim()),
    );
  });
}

/** `status attempts` as each client saw them. */
type Client = (url: string, proxy: string) => Promise<string>;

const JAVA_CLIENT = `
import java.net.*; import java.net.http.*;
public class Fetch {
  public static void main(String[] a) throws Exception {
    URI proxy = URI.create(a[1]);
    HttpClient c = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
      .proxy(ProxySelector.of(new InetSocketAddress(proxy.getHost(), proxy.getPort()))).build();
    HttpResponse<String> r = c.send(HttpRequest.newBuilder(URI.create(a[0])).build(),
      HttpResponse.BodyHandlers.ofString());
    System.out.println(r.statusCode() + " " + r.headers().firstValue("x-reprise-attempts").orElse(""));
  }
}`;

const clients: Record<string, Client> = {
  curl: (url, proxy) =>
    run('curl', [
      ...['-s', '-o', '/dev/null', '--proxy', proxy, '--cacert', caFile()],
      ...['-w', '%{http_code} %header{x-reprise-attempts}', url],
    ]),
  'python requests': (url, proxy) =>
    run(
      'python3',
      [
        '-c',
        'import sys, requests\n' +
          'r = requests.get(sys.argv[1], proxies={"https": sys.argv[2]})\n' +
          'print(r.status_code, r.headers.get("x-reprise-attempts"))',
        url,
        proxy,
      ],
      { REQUESTS_CA_BUNDLE: bundleFile() },
    ),
  'node fetch': (url, proxy) =>
    run(
      process.execPath,
      [
        '-e',
        'fetch(process.argv[1]).then(async (r) => { await r.text(); ' +
          "console.log(r.status + ' ' + r.headers.get('x-reprise-attempts')) })",
        url,
      ],
      { NODE_USE_ENV_PROXY: '1', HTTPS_PROXY: proxy, NODE_EXTRA_CA_CERTS: caFile() },
    ),
  'java HttpClient': async (url, proxy) => {
    const store = join(dir, 'trust.p12');
    rmSync(store, { force: true });
    await run('keytool', [
      ...['-importcert', '-noprompt', '-alias', 'reprise', '-file', caFile()],
      ...['-keystore', store, '-storetype', 'PKCS12', '-storepass', 'changeit'],
    ]);
    const source = join(dir, 'Fetch.java');
    writeFileSync(source, JAVA_CLIENT);
    return run('java', [
      `-Djavax.net.ssl.trustStore=${store}`,
      '-Djavax.net.ssl.trustStorePassword=changeit',
      '-Djavax.net.ssl.trustStoreType=PKCS12',
      source,
      url,
      proxy,
    ]);
  },
};

describe.skipIf(!hasOpenssl())('interception', () => {
  it.each(Object.keys(clients))('heals 503, 503, 200 for %s calling https://', async (name) => {
    const up = await startHttpsUpstream([reply(503), reply(503), reply(200, 'ok')], server);
    const proxy = await startProxy(interceptConfig(up.port));
    const said = await (clients[name] as Client)(
      `https://localhost:${up.port}/v1`,
      `http://127.0.0.1:${proxy.port}`,
    );
    expect(said).toBe('200 3');
    expect(up.seen.map((s) => s.headers['x-reprise-attempt'])).toEqual(['1', '2', '3']);
    const line = proxy.requests().find((l) => l.method === 'GET');
    expect(line).toMatchObject({ status: 200, attempts: 3, tunnel: 'intercepted', tls: true });
  });
});

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** The value of one series in the proxy's /metrics text (0 when it is absent). */
async function metric(proxy: TestProxy, series: string): Promise<number> {
  const text = (await proxy.app.metrics?.text()) ?? '';
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Trusts reprise's CA, as an app given writeCa does. */
const trusting = () => ({ ca: readFileSync(caFile(), 'utf8'), servername: 'localhost' });

describe.skipIf(!hasOpenssl())('inside an intercepted tunnel', () => {
  async function setup(script = [reply(200, 'ok')], upstreamPem = server) {
    const up = await startHttpsUpstream(script, upstreamPem);
    const proxy = await startProxy(interceptConfig(up.port));
    return { up, proxy, authority: `localhost:${up.port}` };
  }

  it('replays a PUT body byte for byte on each retry', async () => {
    const { up, proxy, authority } = await setup([reply(503), reply(503), echo()]);
    const tls = await tlsInTunnel(proxy.port, authority, trusting());
    const body = randomBytes(256 * 1024);
    const res = await requestOn(tls, authority, { method: 'PUT', path: '/blob', body });
    expect(res.status).toBe(200);
    expect(res.headers['x-reprise-attempts']).toBe('3');
    expect(up.seen.map((s) => sha(s.body))).toEqual([sha(body), sha(body), sha(body)]);
    expect(sha(res.body)).toBe(sha(body));
  });

  it('does not retry a POST', async () => {
    const { up, proxy, authority } = await setup([reply(503), reply(200, 'ok')]);
    const tls = await tlsInTunnel(proxy.port, authority, trusting());
    const res = await requestOn(tls, authority, { method: 'POST', body: 'x' });
    expect(res.status).toBe(503);
    expect(res.headers['x-reprise-attempts']).toBe('1');
    expect(up.seen).toHaveLength(1);
  });

  it('serves several requests on one keep-alive tunnel, counted once as intercepted', async () => {
    const { up, proxy, authority } = await setup();
    const tls = await tlsInTunnel(proxy.port, authority, trusting());
    for (let i = 0; i < 3; i++) {
      const res = await requestOn(tls, authority, {
        path: `/n${i}`,
        headers: { connection: 'keep-alive' },
      });
      expect(res.status).toBe(200);
    }
    expect(up.seen.map((s) => s.url)).toEqual(['/n0', '/n1', '/n2']);
    expect(
      await metric(proxy, `reprise_tunnels_total{upstream="${authority}",outcome="intercepted"}`),
    ).toBe(1);
    expect(await metric(proxy, 'reprise_tls_certificates_total{result="minted"}')).toBe(1);
    expect(await metric(proxy, 'reprise_tls_handshakes_total{side="client",result="ok"}')).toBe(1);
  });

  it("answers a client that sends no SNI with the CONNECT host's certificate", async () => {
    const { proxy, authority } = await setup();
    // an IP literal as servername: node:tls then sends no SNI, and checks the name itself
    const tls = await tlsInTunnel(proxy.port, authority, {
      ca: readFileSync(caFile(), 'utf8'),
      servername: '',
      checkServerIdentity: () => undefined,
    });
    expect(tls.getPeerX509Certificate()?.subjectAltName).toBe('DNS:localhost');
    const res = await requestOn(tls, authority);
    expect(res.status).toBe(200);
  });

  it('refuses a handshake whose SNI names another host, and mints nothing', async () => {
    const { proxy, authority } = await setup();
    await expect(
      tlsInTunnel(proxy.port, authority, { ...trusting(), servername: 'bank.example' }),
    ).rejects.toThrow();
    expect(
      await metric(proxy, 'reprise_tls_handshakes_total{side="client",result="sni-mismatch"}'),
    ).toBe(1);
    expect(await metric(proxy, 'reprise_tls_certificates_total{result="minted"}')).toBe(0);
    expect(proxy.logs.find((l) => l.result === 'sni-mismatch')).toMatchObject({
      level: 'warn',
      upstream: authority,
      sni: 'bank.example',
    });
  });

  it('warns, naming the host, when the client rejects the certificate (pinning)', async () => {
    const { up, proxy, authority } = await setup();
    // curl trusting only the upstream's own CA: what a client pinning the real certificate
    // does; it answers reprise's certificate with an unknown_ca alert
    const url = `https://${authority}/`;
    const args = [
      '-s',
      '--proxy',
      `http://127.0.0.1:${proxy.port}`,
      '--cacert',
      upstreamCaFile,
      url,
    ];
    await expect(run('curl', args)).rejects.toThrow(/exit code 60|Command failed/);
    await expect
      .poll(() => metric(proxy, 'reprise_tls_handshakes_total{side="client",result="rejected"}'))
      .toBe(1);
    expect(proxy.logs.find((l) => l.result === 'rejected')).toMatchObject({
      level: 'warn',
      upstream: authority,
      sni: 'localhost',
    });
    expect(up.seen).toHaveLength(0);
  });

  it('counts a client that aborts its handshake', async () => {
    const { proxy, authority } = await setup();
    const hello = await captureClientHello('localhost');
    const socket = await openTunnel(proxy.port, authority);
    socket.write(hello);
    // reprise answered the ClientHello: leave before finishing
    await once(socket, 'data');
    socket.destroy();
    await expect
      .poll(() => metric(proxy, 'reprise_tls_handshakes_total{side="client",result="aborted"}'))
      .toBe(1);
    expect(await metric(proxy, 'reprise_tls_handshakes_total{side="client",result="ok"}')).toBe(0);
  });

  it('counts a client that starts a handshake and never finishes it within headersTimeout', async () => {
    const up = await startHttpsUpstream([reply(200, 'ok')], server);
    const proxy = await startProxy(interceptConfig(up.port, 'limits: { headersTimeout: 200ms }\n'));
    const socket = await openTunnel(proxy.port, `localhost:${up.port}`);
    socket.write(await captureClientHello('localhost'));
    socket.resume();
    await once(socket, 'close');
    expect(
      await metric(proxy, 'reprise_tls_handshakes_total{side="client",result="timeout"}'),
    ).toBe(1);
  });

  it('answers 502 upstream-certificate inside the tunnel for an upstream with a bad certificate', async () => {
    const { up, proxy, authority } = await setup([reply(200, 'ok')], stranger);
    const tls = await tlsInTunnel(proxy.port, authority, trusting());
    const res = await requestOn(tls, authority);
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-error']).toBe('upstream-certificate');
    expect(res.headers['x-reprise-attempts']).toBe('1');
    expect(up.seen).toHaveLength(0);
  });

  it('passes on a client that offers only h2, untouched', async () => {
    // a TLS upstream that speaks h2 only (ALPN), as many HTTPS origins do
    const h2 = createTlsServer({ ...server, ALPNProtocols: ['h2'] }, (socket) => socket.end('h2!'));
    h2.listen(0, '127.0.0.1');
    await once(h2, 'listening');
    closeLater(() => new Promise<void>((resolve) => h2.close(() => resolve())));
    const port = (h2.address() as AddressInfo).port;
    const proxy = await startProxy(interceptConfig(port));
    const tls = await tlsInTunnel(proxy.port, `localhost:${port}`, {
      ca: readFileSync(upstreamCaFile, 'utf8'),
      servername: 'localhost',
      ALPNProtocols: ['h2'],
    });
    // the upstream's own certificate and protocol: nothing in between
    expect(tls.getPeerX509Certificate()?.fingerprint256).toBe(
      new X509Certificate(server.cert).fingerprint256,
    );
    expect(tls.alpnProtocol).toBe('h2');
    const [said] = (await once(tls, 'data')) as [Buffer];
    expect(said.toString()).toBe('h2!');
    expect(
      await metric(proxy, 'reprise_tls_handshakes_total{side="client",result="h2-only"}'),
    ).toBe(1);
    expect(await metric(proxy, 'reprise_tls_certificates_total{result="minted"}')).toBe(0);
  });

  it('passes garbage after the 200 through, byte for byte', async () => {
    const echoServer = await startEcho();
    const proxy = await startProxy(interceptConfig(echoServer.port));
    const socket = await openTunnel(proxy.port, `localhost:${echoServer.port}`);
    const garbage = Buffer.concat([Buffer.from([0, 1, 2, 0xff]), randomBytes(4096)]);
    socket.write(garbage);
    let got = Buffer.alloc(0);
    while (got.length < garbage.length) {
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      got = Buffer.concat([got, chunk]);
    }
    expect(sha(got)).toBe(sha(garbage));
    socket.destroy();
    expect(
      await metric(
        proxy,
        `reprise_tunnels_total{upstream="localhost:${echoServer.port}",outcome="established"}`,
      ),
    ).toBe(1);
  });
});

describe('start-up', () => {
  it('refuses to start when writeCa cannot be written, naming the key and the path', async () => {
    const config =
      'connect:\n  intercept:\n    hosts: [a.example]\n    writeCa: /nonexistent/ca.crt\n';
    await expect(startProxy(config)).rejects.toThrow(
      'connect.intercept.writeCa: cannot write /nonexistent/ca.crt: its directory does not exist',
    );
  });
});

describe.skipIf(!hasOpenssl())('reload', () => {
  it('makes a new CA and rewrites both files when hosts change; keeps it otherwise', async () => {
    const up = await startHttpsUpstream([reply(200, 'ok')], server);
    const proxy = await startProxy(interceptConfig(up.port));
    const first = readFileSync(caFile(), 'utf8');
    const text = (hosts: string) =>
      `version: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\n${interceptConfig(up.port).replace('hosts: [localhost]', hosts)}`;
    await proxy.app.reload(loadConfigText(text('hosts: [localhost]'), 'same.yaml'));
    expect(readFileSync(caFile(), 'utf8')).toBe(first);
    await proxy.app.reload(loadConfigText(text('hosts: [localhost, api.example]'), 'more.yaml'));
    const second = readFileSync(caFile(), 'utf8');
    expect(second).not.toBe(first);
    expect(readFileSync(bundleFile(), 'utf8').endsWith(second)).toBe(true);
    expect(new X509Certificate(second).toLegacyObject().subject).toBeDefined();
    // the new CA signs what the tunnel now answers with
    const tls = await tlsInTunnel(proxy.port, `localhost:${up.port}`, {
      ca: second,
      servername: 'localhost',
    });
    expect((await requestOn(tls, `localhost:${up.port}`)).status).toBe(200);
    expect(proxy.logs.find((l) => l.msg === 'interception CA renewed')).toMatchObject({
      level: 'warn',
      writeCa: caFile(),
    });
  });
});

describe.skipIf(!hasOpenssl())('a tunnel to a host that is not intercepted', () => {
  it("passes through byte for byte: the client sees the origin's own certificate", async () => {
    const up = await startHttpsUpstream([reply(200, 'ok')], server);
    const proxy = await startProxy(interceptConfig(up.port));
    const authority = `127.0.0.1:${up.port}`;
    const tls = await tlsInTunnel(proxy.port, authority, {
      ca: readFileSync(upstreamCaFile, 'utf8'),
      servername: 'localhost',
    });
    expect(tls.getPeerX509Certificate()?.fingerprint256).toBe(
      new X509Certificate(server.cert).fingerprint256,
    );
    const res = await requestOn(tls, authority);
    expect(res.status).toBe(200);
    expect(res.headers['x-reprise-attempts']).toBeUndefined();
    expect(await metric(proxy, 'reprise_tls_certificates_total{result="minted"}')).toBe(0);
  });
});

/** The first bytes node:tls sends for `servername`: a real ClientHello. */
async function captureClientHello(servername: string): Promise<Buffer> {
  const catcher = createServer();
  catcher.listen(0, '127.0.0.1');
  await once(catcher, 'listening');
  const port = (catcher.address() as AddressInfo).port;
  const [[socket]] = await Promise.all([
    once(catcher, 'connection') as Promise<[Socket]>,
    Promise.resolve(tlsConnect({ host: '127.0.0.1', port, servername }).on('error', () => {})),
  ]);
  const [hello] = (await once(socket, 'data')) as [Buffer];
  socket.destroy();
  catcher.close();
  return hello;
}

/** A TCP server that echoes every byte (a protocol reprise knows nothing of). */
async function startEcho(): Promise<{ port: number }> {
  const echoServer = createServer((socket) => socket.pipe(socket));
  echoServer.listen(0, '127.0.0.1');
  await once(echoServer, 'listening');
  closeLater(() => new Promise<void>((resolve) => echoServer.close(() => resolve())));
  return { port: (echoServer.address() as AddressInfo).port };
}
