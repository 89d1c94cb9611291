import { defineConfig } from 'vitest/config';

/**
 * Two projects: most files run in parallel; the few that measure load, memory or bursts of
 * time run afterwards, one file at a time, so the others' CPU use cannot skew them.
 */
const SERIAL = [
  'test/integration/resilience-matrix.test.ts',
  'test/integration/memory.test.ts',
  'test/integration/protection.test.ts',
  'test/integration/intercept-flood.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'parallel', include: ['test/**/*.test.ts'], exclude: SERIAL },
      },
      { extends: true, test: { name: 'serial', include: SERIAL, fileParallelism: false } },
    ],
  },
});
