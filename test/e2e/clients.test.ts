/**
 * Real clients beyond Node (curl, Python's urllib) against the built CLI, as a service would
 * use reprise: HTTP_PROXY for plain HTTP, HTTPS_PROXY for a CONNECT tunnel. Needs `npm run
 * build` first (`npm test` runs it).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { ProxyAgent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeCertificates, type TestCertificates } from '../helpers/tls.ts';
import { reply, startUpstream, type Upstream } from '../helpers/upstream.ts';

const CLI = resolve('dist/cli/main.js');
const FAST = 'defaults:\n  route:\n    retry:\n      backoff: { base: 1ms, max: 5ms }\n';

let dir: string;
beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  dir = mkdtempSync(join(tmpdir(), 'reprise-e2e-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface RunningCli {
  readonly child: ChildProcess;
  readonly proxy: string;
}

const running: ChildProcess[] = [];
let upstream: Upstream | undefined;
afterEach(async () => {
  for (const child of running.splice(0)) {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
  await upstream?.close();
  upstream = undefined;
});

function writeConfig(name: string, yaml: string): string {
  const file = join(dir, name);
  writeFileSync(file, `version: 1\n${yaml}`);
  return file;
}

/** Starts the CLI and resolves once its `listening` log line names the proxy address. */
async function startCli(yaml: string): Promise<RunningCli> {
  const file = writeConfig('reprise.yaml', `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n${yaml}`);
  const child = spawn(process.execPath, [CLI, '--config', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  running.push(child);
  for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
    const entry = JSON.parse(line) as { msg?: string; proxy?: string };
    if (entry.msg === 'listening') return { child, proxy: `http://${entry.proxy}` };
  }
  throw new Error('the CLI exited before listening');
}

/** Runs a command without any NO_PROXY that could make it bypass the proxy. */
function run(command: string, args: string[], env: Record<string, string>): Promise<string> {
  const { NO_PROXY: _a, no_proxy: _b, ...rest } = process.env;
  return new Promise((resolveRun, reject) => {
    execFile(
      command,
      args,
      { env: { ...rest, ...env }, timeout: 15_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${command} failed: ${err.message}\n${stderr}`));
        else resolveRun(stdout);
      },
    );
  });
}

describe('real clients through the built CLI', () => {
  it('curl through http_proxy gets the answer healed by a retry', async () => {
    upstream = await startUpstream([reply(503), reply(200, 'healed by reprise')]);
    const { proxy } = await startCli(FAST);
    const out = await run('curl', ['-sS', '-i', `${upstream.origin}/curl`], { http_proxy: proxy });
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    expect(out).toMatch(/\r\nx-reprise-attempts: 2\r\n/i);
    expect(out.endsWith('healed by reprise')).toBe(true);
    expect(upstream.seen).toHaveLength(2);
  });

  it("Python's urllib through HTTP_PROXY gets the answer healed by a retry", async () => {
    upstream = await startUpstream([reply(503), reply(200, 'healed by reprise')]);
    const { proxy } = await startCli(FAST);
    const script =
      'import sys, urllib.request\n' +
      'r = urllib.request.urlopen(sys.argv[1])\n' +
      'print(r.status, r.headers["x-reprise-attempts"], r.read().decode())';
    const out = await run('python3', ['-c', script, `${upstream.origin}/python`], {
      HTTP_PROXY: proxy,
    });
    expect(out.trim()).toBe('200 2 healed by reprise');
    expect(upstream.seen.map((s) => s.url)).toEqual(['/python', '/python']);
  });

  it("Node's http module with NODE_USE_ENV_PROXY=1 gets the answer healed by a retry", async () => {
    upstream = await startUpstream([reply(503), reply(200, 'healed by reprise')]);
    const { proxy } = await startCli(FAST);
    const script =
      "require('node:http').get(process.argv[1], (res) => { let body = ''; " +
      "res.on('data', (c) => { body += c; }); " +
      "res.on('end', () => console.log(res.statusCode, res.headers['x-reprise-attempts'], body)); })";
    const out = await run(process.execPath, ['-e', script, `${upstream.origin}/node`], {
      NODE_USE_ENV_PROXY: '1',
      HTTP_PROXY: proxy,
    });
    expect(out.trim()).toBe('200 2 healed by reprise');
  });

  it("undici's ProxyAgent gets the answer healed by a retry", async () => {
    upstream = await startUpstream([reply(503), reply(200, 'healed by reprise')]);
    const { proxy } = await startCli(FAST);
    const dispatcher = new ProxyAgent(proxy);
    try {
      const res = await request(`${upstream.origin}/undici`, { dispatcher });
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-reprise-attempts']).toBe('2');
      expect(await res.body.text()).toBe('healed by reprise');
    } finally {
      await dispatcher.close();
    }
  });

  describe('HTTPS through a CONNECT tunnel', () => {
    let certs: TestCertificates;
    let tls: HttpsServer;
    let tlsPort: number;
    beforeAll(async () => {
      certs = makeCertificates();
      tls = createHttpsServer({ key: certs.key, cert: certs.cert }, (_req, res) =>
        res.end('secret over TLS'),
      );
      tls.listen(0, '127.0.0.1');
      await once(tls, 'listening');
      tlsPort = (tls.address() as AddressInfo).port;
    });
    afterAll(async () => {
      tls.closeAllConnections();
      await new Promise((done) => tls.close(done));
      certs.remove();
    });

    it('curl through https_proxy fetches from a local TLS server trusted via --cacert', async () => {
      const { proxy } = await startCli(`connect:\n  allowedPorts: [${tlsPort}]\n`);
      const out = await run(
        'curl',
        [
          '-sS',
          '--cacert',
          certs.caFile,
          '-w',
          '\n%{http_connect} %{http_code}',
          `https://localhost:${tlsPort}/`,
        ],
        { https_proxy: proxy },
      );
      expect(out).toBe('secret over TLS\n200 200');
    });

    it('curl through https_proxy gets 403 for a port outside connect.allowedPorts', async () => {
      const { proxy } = await startCli('connect:\n  allowedPorts: [443]\n');
      const failure = await run(
        'curl',
        ['-sS', '--cacert', certs.caFile, `https://localhost:${tlsPort}/`],
        {
          https_proxy: proxy,
        },
      ).then(
        () => 'curl succeeded',
        (err: Error) => err.message,
      );
      expect(failure).toContain('CONNECT tunnel failed, response 403');
    });
  });
});

describe('refusing to be an open proxy', () => {
  it('exits 1 with one line on stderr when listen is not loopback and allowedClients is missing', async () => {
    const file = writeConfig('open.yaml', 'listen: 0.0.0.0:0\nadmin: 127.0.0.1:0\n');
    const child = spawn(process.execPath, [CLI, '--config', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.push(child);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(1);
    const lines = stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('access.allowedClients');
    expect(lines[0]).toMatch(/^.*open\.yaml:2:\d+: listen: /);
  });
});
