/**
 * README "Set up", run as written: `npm start`, then the two commands of the first minute (a
 * flaky demo upstream, a curl through reprise), parsed from the README so that this fails
 * when the README drifts. The curl must see the healed answer, and every stdout line of
 * `npm start` must be JSON (`npm start | jq` works). `npm ci` is left out: the suite runs in
 * an installed tree.
 *
 * The commands use fixed ports (3128, 9901, 8503), so they run in a network namespace of
 * their own where one can be made (root, iproute2), else on this machine's loopback when
 * those ports are free; otherwise the test is skipped and says why.
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createNetns, type Netns } from '../helpers/netns.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const PORTS = [3128, 9901, 8503];

/** The `sh` blocks of README's "Set up" section, each as its command lines, comments removed. */
function setUpCommands(readme: string): string[][] {
  const start = readme.indexOf('\n## Set up\n');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  return blocks.map((block) =>
    block
      .split('\n')
      .map((line) => line.replace(/\s+#\s.*$/, '').trim())
      .filter((line) => line !== ''),
  );
}

const blocks = setUpCommands(readFileSync(resolve(ROOT, 'README.md'), 'utf8'));
const startLine = blocks[0]?.find((line) => line.startsWith('npm start'));
const firstMinute = blocks[1] ?? [];

/** Where the commands can run: a namespace, this machine, or a reason to skip. */
async function placeToRun(): Promise<{ ns: Netns | undefined } | { skip: string }> {
  let netnsProblem: string;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'pipe' });
    return { ns: await createNetns('reprise-readme') };
  } catch (err) {
    netnsProblem = String((err as Error).message).split('\n')[0] ?? '';
  }
  for (const port of PORTS) {
    if (!(await isFree(port))) {
      return { skip: `no network namespace (${netnsProblem}) and port ${port} is taken here` };
    }
  }
  return { ns: undefined };
}

function isFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(port, '127.0.0.1', () => server.close(() => done(true)));
  });
}

const place = await placeToRun();
const skipReason = 'skip' in place ? ` (skipped: ${place.skip})` : '';
const ns = 'ns' in place ? place.ns : undefined;

const started: ChildProcess[] = [];
afterAll(async () => {
  for (const child of started) stopGroup(child);
  await ns?.close();
});

/** Runs `command` with sh in the project, in its own process group (so it can be stopped whole). */
function sh(command: string): ChildProcess & { out: () => string; err: () => string } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // npm hands its settings to scripts as npm_config_*; the project's .npmrc must decide here
  for (const key of Object.keys(env)) if (key.startsWith('npm_config_')) delete env[key];
  const options: SpawnOptions = {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  };
  const child =
    ns === undefined
      ? spawn('sh', ['-c', command], options)
      : ns.spawn('sh', ['-c', command], options);
  started.push(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  return Object.assign(child, { out: () => out, err: () => err });
}

function stopGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {}
}

async function waitFor(what: string, test: () => boolean, timeoutMs = 30_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !test(); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(skipReason !== '')(`README's first minute${skipReason}`, () => {
  let proxy: ReturnType<typeof sh>;

  it('has npm start, then a flaky upstream and a curl through reprise', () => {
    expect(startLine).toBe('npm start');
    expect(firstMinute).toHaveLength(2);
    expect(firstMinute[0]).toMatch(/&$/);
    expect(firstMinute[1]).toMatch(/^curl .*(-x|--proxy) http:\/\/127\.0\.0\.1:3128 /);
  });

  it('shows a request retried and healed: 200 after 3 tries', async () => {
    proxy = sh(startLine as string);
    await waitFor('npm start to listen', () => proxy.out().includes('"msg":"listening"'));
    // the background command, as a shell runs it: started, and reached once it says so
    const demo = sh((firstMinute[0] as string).replace(/&$/, ''));
    await waitFor('the demo upstream', () => demo.out().includes('demo-upstream on http://'));
    const curl = sh(firstMinute[1] as string);
    const [code] = await once(curl, 'close');
    expect(curl.err()).toBe('');
    expect(code).toBe(0);
    expect(curl.out()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(curl.out()).toMatch(/\r\nx-reprise-attempts: 3\r\n/i);
    expect(curl.out()).toMatch(/\r\n\r\nhealed: request \S+ answered on its try 3/);
    stopGroup(demo);
  }, 60_000);

  it('printed only JSON lines on the stdout of npm start, the access line among them', async () => {
    stopGroup(proxy);
    // 'close': every process holding the pipe is gone, so the last lines are in
    await once(proxy, 'close');
    const lines = proxy
      .out()
      .split('\n')
      .filter((line) => line !== '');
    const parsed = lines.map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`npm start printed a line that is not JSON: ${line}`);
      }
    });
    expect(parsed.map((line) => line.msg)).toEqual(
      expect.arrayContaining(['listening', 'request', 'stopped']),
    );
    expect(parsed.find((line) => line.msg === 'request')).toMatchObject({
      status: 200,
      attempts: 3,
      retries: ['503', '503'],
    });
  }, 30_000);
});
