/**
 * The memory settings reprise runs with live in the first line of src/cli/main.ts (what
 * `npx reprise` runs) and are repeated by `npm start` and the image's ENTRYPOINT, which cannot
 * use that line: the three must say the same.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseDockerfile } from '../helpers/dockerfile.ts';

interface Settings {
  env: Record<string, string>;
  flags: string[];
}

/** `[VAR=value…] node [--flag…] SCRIPT…` → the variables and the flags. */
function settingsOf(words: string[]): Settings {
  const node = words.findIndex((w) => w === 'node' || w.endsWith('/node'));
  expect(node, `no node in ${words.join(' ')}`).toBeGreaterThanOrEqual(0);
  const env = Object.fromEntries(words.slice(0, node).map((w) => w.split('=', 2)));
  const flags = words.slice(node + 1).filter((w) => w.startsWith('--'));
  return { env, flags };
}

const shebang = readFileSync('src/cli/main.ts', 'utf8').split('\n', 1)[0] ?? '';

describe('runtime settings', () => {
  const fromShebang = settingsOf(shebang.replace(/^#!\/usr\/bin\/env -S /, '').split(/\s+/));

  it('bound the heap and the malloc arenas in the CLI’s first line, and expose gc', () => {
    expect(shebang).toMatch(/^#!\/usr\/bin\/env -S /);
    expect(fromShebang.flags).toEqual(
      expect.arrayContaining([
        '--expose-gc', // for src/quiet-collector.ts
        expect.stringMatching(/^--max-semi-space-size=\d+$/),
        expect.stringMatching(/^--max-old-space-size=\d+$/),
      ]),
    );
    expect(fromShebang.env).toHaveProperty('MALLOC_ARENA_MAX');
  });

  it('are the same for npm start', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: { start: string } };
    expect(settingsOf(pkg.scripts.start.split(/\s+/))).toEqual(fromShebang);
  });

  it('are the same in the image (ENV and ENTRYPOINT)', () => {
    const final = parseDockerfile(readFileSync('Dockerfile', 'utf8')).at(-1);
    const entry = settingsOf(final?.entrypoint ?? []);
    const env = Object.fromEntries(
      Object.keys(fromShebang.env).map((k) => [k, final?.env[k] ?? '(unset)']),
    );
    expect({ env, flags: entry.flags }).toEqual(fromShebang);
  });
});
