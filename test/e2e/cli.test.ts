/**
 * The built CLI as users run it (SPEC §1): exit codes, `check` and `explain` output, and one
 * clear stderr line, never a stack, for user errors.
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import pkg from '../../package.json' with { type: 'json' };
import {
  type CliResult,
  removeTempDirs,
  runCli,
  startCli,
  tempDir,
  writeConfig,
} from '../helpers/cli.ts';

const LOCATED = /^(.+):(\d+):(\d+): ([\w.[\]]+): (.+)$/;

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((done) => server.close(done));
  removeTempDirs();
});

/** A port held by another listener for the duration of the test. */
async function busyPort(): Promise<number> {
  const server = createServer();
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

/** A config file with exactly `text` (no listen/admin added). */
function writeRaw(text: string): string {
  const file = join(tempDir(), 'raw.yaml');
  writeFileSync(file, text);
  return file;
}

/** Exit 1 with exactly one line on stderr, no stack trace. */
function expectOneLineError(result: CliResult, pattern: RegExp): void {
  expect(result.code).toBe(1);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(result.stderr).not.toMatch(/^\s+at /m);
}

describe('reprise --version', () => {
  it('prints the package version and exits 0', async () => {
    const result = await runCli(['--version']);
    expect(result).toEqual({ code: 0, stdout: `reprise ${pkg.version}\n`, stderr: '' });
  });
});

describe('reprise check', () => {
  it('prints ok and exits 0 for a valid file', async () => {
    const file = writeConfig('routes:\n  - name: api\n    match: { host: api.example.com }\n');
    const result = await runCli(['check', file]);
    expect(result).toEqual({ code: 0, stdout: 'ok\n', stderr: '' });
  });

  it('exits 1 and prints every error as FILE:LINE:COL: key.path: message', async () => {
    const file = writeConfig(
      'defaults:\n  route:\n    retry:\n      attempts: 0\n      bogus: 1\n' +
        '    timeout: soon\n',
    );
    const result = await runCli(['check', file]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines.map((line) => LOCATED.exec(line)?.slice(1, 5))).toEqual([
      [file, '7', '17', 'defaults.route.retry.attempts'],
      [file, '8', '7', 'defaults.route.retry.bogus'],
      [file, '9', '14', 'defaults.route.timeout'],
    ]);
  });

  it('exits 1 with one line for a file that does not exist', async () => {
    const missing = `${tempDir()}/missing.yaml`;
    expectOneLineError(await runCli(['check', missing]), /missing\.yaml.*no such file/);
  });

  it('exits 1 with a usage line when the file is not given', async () => {
    expectOneLineError(await runCli(['check']), /^reprise: usage: reprise check FILE$/);
  });
});

describe('reprise explain', () => {
  const file = () =>
    writeConfig(
      'routes:\n  - name: payments\n    match: { host: pay.example.com, path: /v1/ }\n' +
        '    retry: { attempts: 3, backoff: { base: 100ms, max: 1s, jitter: none } }\n',
    );

  it('prints the matched route, the policy and the delay before each retry', async () => {
    const result = await runCli([
      'explain',
      '--config',
      file(),
      'GET',
      'http://pay.example.com/v1/x',
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('route: payments\n');
    expect(result.stdout).toContain('  attempts: 3\n');
    expect(result.stdout).toMatch(/retryable: yes/);
    expect(result.stdout).toContain('retry 1: 100ms');
    expect(result.stdout).toContain('retry 2: 200ms');
    expect(result.stdout).toContain('upstream pay.example.com:80:');
  });

  it('says why a POST without an idempotency key is not retried', async () => {
    const result = await runCli([
      'explain',
      '--config',
      file(),
      'POST',
      'http://pay.example.com/v1/x',
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/retryable: no: POST is not in retry\.methods/);
  });

  it('narrows by the request headers given with -H', async () => {
    const result = await runCli([
      'explain',
      'GET',
      'http://other.example.com/',
      '-H',
      'x-reprise-retry: off',
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('route: default (no route matched)');
    expect(result.stdout).toContain('retryable: no: x-reprise-retry: off');
  });

  it('exits 1 with one line for a URL it cannot proxy', async () => {
    expectOneLineError(await runCli(['explain', 'GET', 'ftp://x/']), /^reprise: .*ftp:\/\/x/);
  });
});

describe('starting and failing to start', () => {
  it('exits 1 with one line for an unknown LOG_LEVEL', async () => {
    const result = await runCli(['--config', writeConfig('')], { LOG_LEVEL: 'loud' });
    expectOneLineError(result, /^reprise: LOG_LEVEL: unknown level "loud"/);
  });

  it('takes an empty LOG_LEVEL as unset and logs at info', async () => {
    const cli = await startCli(writeConfig(''), { LOG_LEVEL: '' });
    expect(await cli.stop()).toEqual({ code: 0, signal: null });
    expect(cli.logs.find((line) => line.msg === 'listening')).toMatchObject({ level: 'info' });
  });

  it('exits 1 with one line when the proxy port is in use', async () => {
    const port = await busyPort();
    const file = writeRaw(`version: 1\nlisten: 127.0.0.1:${port}\nadmin: 127.0.0.1:0\n`);
    expectOneLineError(await runCli(['--config', file]), /^reprise: cannot listen: .*EADDRINUSE/);
  });

  it('exits 1 with one line when the admin port is in use', async () => {
    const port = await busyPort();
    const file = writeRaw(`version: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:${port}\n`);
    expectOneLineError(await runCli(['--config', file]), /^reprise: cannot listen: .*EADDRINUSE/);
  });

  it('exits 1 with the located errors for a bad config', async () => {
    const result = await runCli(['--config', writeConfig('limits: { drainTimeout: 5 }\n')]);
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd()).toMatch(LOCATED);
    expect(result.stderr).toContain(': limits.drainTimeout: ');
  });

  it('exits 1 with one line for an unknown option', async () => {
    expectOneLineError(await runCli(['--bogus']), /^reprise: Unknown option '--bogus'/);
  });

  it('points to --help when an option is unknown', async () => {
    const result = await runCli(['--bogus']);
    expect(result.stderr).toMatch(/\(see reprise --help\)\n$/);
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('reprise --help');
  });

  it('points to --help when an option of explain is unknown', async () => {
    const result = await runCli(['explain', '--bogus', 'GET', 'http://a.example/']);
    expectOneLineError(result, /^reprise: Unknown option '--bogus'.*\(see reprise --help\)$/);
  });

  it('reads the config named by REPRISE_CONFIG', async () => {
    const port = await busyPort();
    const file = writeRaw(`version: 1\nlisten: 127.0.0.1:${port}\nadmin: 127.0.0.1:0\n`);
    // the busy port proves this file was the one read
    const result = await runCli([], { REPRISE_CONFIG: file });
    expectOneLineError(result, new RegExp(`EADDRINUSE.*:${port}`));
  });
});
