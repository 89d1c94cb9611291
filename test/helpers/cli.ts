/**
 * Runs the built CLI (`dist/cli/main.js`) as a child process, as an operator would: a temp
 * config, the JSON log lines of stdout parsed as they arrive, the ports taken from the
 * `listening` line. Needs `npm run build` first (`npm test` runs it in pretest).
 * Also a small Prometheus text parser, shared by the tests that read /metrics.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const CLI = resolve('dist/cli/main.js');

export type LogLine = Record<string, unknown>;

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface RunningCli {
  readonly child: ChildProcess;
  readonly proxyPort: number;
  readonly adminPort: number;
  /** Every stdout line parsed as JSON so far (a line that is not JSON fails the wait). */
  readonly logs: LogLine[];
  /** Raw stdout and stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first line (seen before or later) that `match` accepts. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  readonly exited: Promise<Exit>;
  /** SIGTERM, then waits for the exit (SIGKILL after 5s). */
  stop(): Promise<Exit>;
}

/** A temp directory removed by `removeTempDirs`. */
const dirs: string[] = [];
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'reprise-cli-'));
  dirs.push(dir);
  return dir;
}
export function removeTempDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Writes `version: 1` + `listen`/`admin` on port 0 + `yaml` to a temp file; returns its path. */
export function writeConfig(yaml: string, dir = tempDir(), name = 'reprise.yaml'): string {
  const file = join(dir, name);
  writeFileSync(file, configText(yaml));
  return file;
}

export function configText(yaml: string): string {
  return `version: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\n${yaml}`;
}

function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
}

/** Starts `reprise --config FILE` and resolves once its `listening` line names the ports. */
export async function startCli(
  configFile: string,
  env: Record<string, string> = {},
): Promise<RunningCli> {
  assertBuilt();
  const child = spawn(process.execPath, [CLI, '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const logs: LogLine[] = [];
  let stdout = '';
  let stderr = '';
  let partial = '';
  let parseError: Error | undefined;
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    partial += chunk.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        parseError = new Error(`stdout line is not JSON: ${line}`);
      }
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  // 'close', not 'exit': by then every byte the process wrote has been read
  let closed = false;
  const exited = new Promise<Exit>((done) => {
    child.once('close', (code, signal) => {
      closed = true;
      done({ code, signal });
    });
  });

  const waitForLog = async (
    match: (line: LogLine) => boolean,
    timeoutMs = 5_000,
  ): Promise<LogLine> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (parseError !== undefined) throw parseError;
      const found = logs.find(match);
      if (found !== undefined) return found;
      if (closed) throw new Error(`the CLI exited (${child.exitCode}) first; stderr: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`no such log line in ${timeoutMs}ms: ${stderr}`);
      await sleep(10);
    }
  };

  const stop = async (): Promise<Exit> => {
    if (!closed) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    return exited;
  };

  let listening: LogLine;
  try {
    listening = await waitForLog((line) => line.msg === 'listening', 10_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    child,
    proxyPort: portOf(listening.proxy),
    adminPort: portOf(listening.admin),
    logs,
    stdout: () => stdout,
    stderr: () => stderr,
    waitForLog,
    exited,
    stop,
  };
}

function portOf(address: unknown): number {
  const port = Number(String(address).split(':').at(-1));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no port in ${String(address)}`);
  return port;
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI to its end (check, explain, --version, a start that fails). */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<CliResult> {
  assertBuilt();
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`reprise ${args.join(' ')} still ran after ${timeoutMs}ms`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Samples of Prometheus text exposition (comments skipped, label escapes undone). */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`not a Prometheus sample: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] as string] = (pair[2] as string).replace(/\\(.)/g, (_, c: string) =>
        c === 'n' ? '\n' : c,
      );
    }
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

/** Samples named `name` whose labels include every pair of `labels`. */
export function samplesOf(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): Sample[] {
  return samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

/** The samples of `name` that counted something: counters start at 0 once their labels are known. */
export function countedOf(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): Sample[] {
  return samplesOf(samples, name, labels).filter((s) => s.value !== 0);
}

/** GET /metrics from an admin port, parsed. */
export async function scrape(adminPort: number): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parsePrometheus(await res.text());
}

/** Sleeps `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
