/**
 * Interception inside CONNECT tunnels (SPEC §6): real clients call `https://localhost:PORT`
 * through HTTPS_PROXY, trusting the CA reprise writes; reprise terminates their TLS, retries
 * inside, and speaks verified TLS to a real HTTPS upstream (its own CA, made in the test).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { startHttpsUpstream } from '../helpers/https-upstream.ts';
import { FAST, startProxy, type TestProxy } from '../helpers/proxy.ts';
import { hasOpenssl, makeCa, makeLeaf, type TlsFixture, tlsFixture } from '../helpers/tls.ts';
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

export type { TestProxy };
export { createHash, echo, randomBytes, stranger };
