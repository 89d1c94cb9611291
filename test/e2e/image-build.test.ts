/**
 * Does what the Dockerfile does, without a Docker engine, reading the Dockerfile itself so that
 * the two cannot drift apart (test/helpers/dockerfile.ts):
 *   - the stage that runs `npm run build` is this checkout, built by `npm test`'s pretest;
 *   - the stage that installs dependencies runs for real in a temporary directory, with its
 *     own COPY and RUN lines (`npm ci --omit=dev --ignore-scripts`): one npm install;
 *   - the final stage's COPY lines assemble a root filesystem in a temporary directory, and its
 *     ENTRYPOINT starts there with its ENV (paths mapped into that root) and WORKDIR, on this
 *     machine's Node 24 in place of the base image's.
 * The image's config is used as copied, with only the two port numbers changed to free ones.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parser as promql } from '@prometheus-io/lezer-promql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import {
  assembleImage,
  type DockerStage,
  isInContext,
  parseDockerfile,
} from '../helpers/dockerfile.ts';
import { readYamlDocuments } from '../helpers/kustomize-lite.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const final = stages.at(-1) as DockerStage;
const copies = (stage: DockerStage) => stage.steps.filter((s) => s.kind === 'copy');
const runs = (stage: DockerStage) =>
  stage.steps.filter((s) => s.kind === 'run').map((s) => s.command);
const buildStage = stages.find((s) => runs(s).includes('npm run build')) as DockerStage;
/** Where the final stage's ENTRYPOINT expects node (the distroless image's own). */
const IMAGE_NODE = '/nodejs/bin/node';

describe('Dockerfile', () => {
  it('builds on the official Node 24 image and runs on a Node 24 base', () => {
    expect(stages.slice(0, -1).map((s) => s.from)).toEqual(
      stages.slice(0, -1).map(() => 'node:24-slim'),
    );
    expect(final.from).toMatch(/^gcr\.io\/distroless\/nodejs24-debian1\d:nonroot$/);
  });

  it('runs as a numeric non-root user', () => {
    expect(final.user).toMatch(/^[1-9]\d*(:[1-9]\d*)?$/);
  });

  it('exposes the proxy and admin ports and stops on SIGTERM', () => {
    expect([final.expose, final.stopSignal]).toEqual([['3128', '9901'], 'SIGTERM']);
  });

  it('points REPRISE_CONFIG at /etc/reprise/config.yaml and copies deploy/image/config.yaml there', () => {
    expect(final.env.REPRISE_CONFIG).toBe('/etc/reprise/config.yaml');
    expect(copies(final)).toContainEqual(
      expect.objectContaining({
        from: undefined,
        sources: ['deploy/image/config.yaml'],
        dest: '/etc/reprise/config.yaml',
      }),
    );
  });

  it('takes node_modules from a stage that installs production dependencies only', () => {
    const copy = copies(final).find((c) => c.sources.some((s) => s.endsWith('/node_modules')));
    const deps = stages.find((s) => s.name === copy?.from) as DockerStage;
    expect(runs(deps)).toEqual([expect.stringMatching(/^npm ci --omit=dev --ignore-scripts( |$)/)]);
  });

  it('takes dist/ from the stage that runs npm run build, whose output is dist/', () => {
    const copy = copies(final).find((c) => c.sources.some((s) => s.endsWith('/dist')));
    expect(copy?.from).toBe(buildStage.name);
    const build = readFileSync(join(ROOT, 'scripts/build.ts'), 'utf8');
    expect(build).toContain("new URL('../dist/', import.meta.url)");
  });

  it('lets into the build context every file it copies and keeps out node_modules, dist and .git', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8');
    const local = stages.flatMap((s) =>
      copies(s)
        .filter((c) => c.from === undefined)
        .flatMap((c) => c.sources),
    );
    expect(local.filter((s) => !isInContext(ignore, s))).toEqual([]);
    const kept = ['node_modules/x', 'dist/cli/main.js', '.git/HEAD'].filter((s) =>
      isInContext(ignore, s),
    );
    expect(kept).toEqual([]);
  });
});

describe('the image, assembled without Docker', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'reprise-image-'));
  let rootfs = '';
  const inRoot = (path: string) => join(rootfs, path);
  let proxy: ChildProcess;
  let output = '';
  let upstream: Server;
  let ports: { proxy: number; admin: number };
  let before: string[];

  beforeAll(async () => {
    expect(
      existsSync(join(ROOT, 'dist/cli/main.js')),
      'dist/ is missing: run `npm run build`',
    ).toBe(true);
    rootfs = assembleImage(stages, ROOT, tmp, buildStage);
    ports = { proxy: await freePort(), admin: await freePort() };
    const configFile = inRoot(final.env.REPRISE_CONFIG as string);
    const config = parseDocument(readFileSync(configFile, 'utf8'));
    for (const key of ['listen', 'admin'] as const) {
      config.set(
        key,
        String(config.get(key)).replace(/:\d+$/, `:${ports[key === 'listen' ? 'proxy' : 'admin']}`),
      );
    }
    writeFileSync(configFile, config.toString());
    upstream = createServer((req, res) => res.end(`upstream saw ${req.method} ${req.url}`));
    await new Promise<void>((done) => upstream.listen(0, '127.0.0.1', done));
    mkdirSync(inRoot('home/nonroot'), { recursive: true });
    mkdirSync(join(tmp, 'tmp'));
    before = snapshot(rootfs);

    const [node, ...args] = final.entrypoint;
    expect(node).toBe(IMAGE_NODE);
    const env = Object.fromEntries(
      Object.entries(final.env).map(([k, v]) => [k, v.startsWith('/') ? inRoot(v) : v]),
    );
    proxy = spawn(
      process.execPath,
      args.map((a) => (a.startsWith('/') ? inRoot(a) : a)),
      {
        cwd: inRoot(final.workdir),
        env: { ...env, HOME: inRoot('home/nonroot'), TMPDIR: join(tmp, 'tmp') },
      },
    );
    proxy.stdout?.on('data', (d) => {
      output += d;
    });
    proxy.stderr?.on('data', (d) => {
      output += d;
    });
    await waitForReady(ports.admin, proxy, () => output);
  }, 240_000);

  afterAll(async () => {
    if (proxy && proxy.exitCode === null) proxy.kill('SIGKILL');
    await new Promise<void>((done) => (upstream ? upstream.close(() => done()) : done()));
    rmSync(tmp, { recursive: true, force: true });
  });

  it('answers /healthz and /readyz on the admin port', async () => {
    expect([
      (await get(ports.admin, '/healthz')).status,
      (await get(ports.admin, '/readyz')).status,
    ]).toEqual([200, 200]);
  });

  it('forwards a GET through the proxy port to a local upstream', async () => {
    const { port } = upstream.address() as { port: number };
    const res = await get(ports.proxy, `http://127.0.0.1:${port}/hello?x=1`);
    expect([res.status, res.body]).toEqual([200, 'upstream saw GET /hello?x=1']);
  });

  it('exposes every metric that deploy/prometheus/alerts.yaml uses', async () => {
    const metrics = (await get(ports.admin, '/metrics')).body;
    const used = alertMetricNames();
    expect(used.length).toBeGreaterThan(0);
    expect(used.filter((name) => !metrics.includes(`# TYPE ${name} `))).toEqual([]);
  });

  it('exits 0 on the STOPSIGNAL', async () => {
    const exited = new Promise<number | null>((done) => proxy.once('exit', (code) => done(code)));
    proxy.kill(final.stopSignal as NodeJS.Signals);
    expect(await exited, output).toBe(0);
  });

  it('wrote nothing into the image filesystem (only /tmp is writable)', () => {
    expect(snapshot(rootfs)).toEqual(before);
  });
});

function alertMetricNames(): string[] {
  const names = new Set<string>();
  const docs = readYamlDocuments(join(ROOT, 'deploy/prometheus/alerts.yaml'));
  // biome-ignore lint/suspicious/noExplicitAny: a PrometheusRule walked as plain JSON
  for (const rule of docs.flatMap((d: any) => d.spec.groups.flatMap((g: any) => g.rules))) {
    const expr: string = rule.expr;
    promql.parse(expr).iterate({
      enter: (n) => {
        if (n.name === 'Identifier' && n.node.parent?.name === 'VectorSelector')
          names.add(expr.slice(n.from, n.to));
      },
    });
  }
  return [...names].sort();
}

/** Every path under `dir` with its size and modification time. */
function snapshot(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((p) => {
      const s = statSync(join(dir, p));
      return `${p} ${s.size} ${s.mtimeMs}`;
    })
    .sort();
}

function freePort(): Promise<number> {
  const server = createServer();
  return new Promise((done) =>
    server.listen(0, () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    }),
  );
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => done({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

async function waitForReady(
  port: number,
  child: ChildProcess,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`reprise exited with ${child.exitCode}:\n${output()}`);
    const status = await get(port, '/readyz').then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return;
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error(`reprise was not ready within 20 s:\n${output()}`);
}
