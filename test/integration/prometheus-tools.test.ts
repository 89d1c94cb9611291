/**
 * What Prometheus' own tools say: `promtool check metrics` on a live scrape after real
 * traffic, and `promtool check rules` on the alert rules. promtool comes with Debian's
 * `prometheus` package; without it these tests are skipped, and say so in their name.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { FAST, startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import { reply, startUpstream, type Upstream } from '../helpers/upstream.ts';

const hasPromtool = spawnSync('promtool', ['--version']).status === 0;
const SKIPPED = hasPromtool ? '' : ' (skipped: no promtool; apt-get install prometheus)';
const scratch = mkdtempSync(join(tmpdir(), 'reprise-promtool-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let proxy: TestProxy | undefined;
let upstream: Upstream | undefined;
closeAfterEach();

function promtool(args: string[], input?: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { input, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

describe.skipIf(!hasPromtool)(`promtool${SKIPPED}`, () => {
  it('passes `promtool check metrics` on a scrape after retries and suppressed retries', async () => {
    upstream = await startUpstream([reply(503), reply(200, 'ok'), reply(503)]);
    proxy = await startProxy(FAST);
    expect((await viaProxy(proxy.port, 'GET', `${upstream.origin}/a`)).status).toBe(200);
    // a POST is not retried: a suppressed retry, cause "method"
    expect((await viaProxy(proxy.port, 'POST', `${upstream.origin}/b`)).status).toBe(503);
    const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
    expect(text).toContain('reprise_retries_suppressed_total{');
    expect(promtool(['check', 'metrics'], text)).toEqual({ status: 0, output: '' });
  });

  it('passes `promtool check rules` on the alert rules (spec.groups as a rule file)', () => {
    const rule = parse(readFileSync('deploy/prometheus/alerts.yaml', 'utf8'));
    const file = join(scratch, 'rules.yaml');
    writeFileSync(file, stringify({ groups: rule.spec.groups }));
    const result = promtool(['check', 'rules', file]);
    expect(result.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(result.status).toBe(0);
  });

  it('fails a scrape with a gauge named like a counter (the check can fail)', () => {
    const bad = '# HELP x_total a gauge\n# TYPE x_total gauge\nx_total 1\n';
    expect(promtool(['check', 'metrics'], bad).status).not.toBe(0);
  });
});
