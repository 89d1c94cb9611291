/**
 * README "Set up": `npm ci` and `npx reprise` print nothing on stderr on a machine whose own
 * Node is older than the Node 24 the project runs on (npm checks `engines` against the Node
 * that runs npm itself). Uses the npm and Node that run this suite (`npm test` says which);
 * skipped, saying why, where there is nothing to check.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const npmNode = process.env.npm_node_execpath;
const npmCli = process.env.npm_execpath;
const machineNode =
  npmNode === undefined ? undefined : spawnSync(npmNode, ['--version'], { encoding: 'utf8' });
const machineMajor = Number(/^v(\d+)/.exec(machineNode?.stdout ?? '')?.[1] ?? 0);
const skipReason =
  npmNode === undefined || npmCli === undefined
    ? ' (skipped: not run through npm, so the machine npm is unknown)'
    : machineMajor >= 24
      ? ` (skipped: the machine Node is ${machineMajor}, nothing to warn about)`
      : '';

const scratch = mkdtempSync(join(tmpdir(), 'reprise-setup-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The machine npm (or npx) with `args` in `cwd`; the suite's own npm settings left out. */
function npm(tool: 'npm' | 'npx', args: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}) {
  const cli = tool === 'npm' ? (npmCli as string) : join(dirname(npmCli as string), 'npx-cli.js');
  const env = { ...process.env, ...extraEnv };
  // npm hands its settings to scripts as npm_config_*; the project's .npmrc must decide here
  delete env.npm_config_loglevel;
  return spawnSync(npmNode as string, [cli, ...args], { cwd, env, encoding: 'utf8' });
}

/** The lockfile install as `npm ci` plans it (engines are checked then), in a copy of the project. */
function plannedInstall(withNpmrc: boolean) {
  const dir = mkdtempSync(join(scratch, 'p-'));
  for (const file of ['package.json', 'package-lock.json', ...(withNpmrc ? ['.npmrc'] : [])]) {
    copyFileSync(join(ROOT, file), join(dir, file));
  }
  return npm('npm', ['ci', '--dry-run', '--ignore-scripts', '--offline'], dir);
}

describe.skipIf(skipReason !== '')(`set-up on an older machine Node${skipReason}`, () => {
  it('would warn without the project .npmrc (so the next check means something)', () => {
    const bare = plannedInstall(false);
    expect(bare.status).toBe(0);
    expect(bare.stderr).toContain('EBADENGINE');
  });

  it('prints nothing on stderr for npm ci with the project .npmrc', () => {
    const run = plannedInstall(true);
    expect(run.status).toBe(0);
    expect(run.stderr).toBe('');
  });

  it('prints nothing on stderr for a first npx reprise --version', () => {
    // npx installs the project into its own cache on first use, checking engines then: a
    // fresh cache makes this run a first one
    const cache = mkdtempSync(join(scratch, 'cache-'));
    const run = npm('npx', ['--offline', 'reprise', '--version'], ROOT, {
      npm_config_cache: cache,
    });
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^reprise \d+\.\d+\.\d+/);
    expect(run.status).toBe(0);
  });
});
