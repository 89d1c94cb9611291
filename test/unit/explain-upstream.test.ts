/**
 * `explain` shows the budget and breaker an upstream gets: from a YAML file as compiled, and the
 * same settings the upstream registry applies at run time (issue 3).
 */
import { describe, expect, it } from 'vitest';
import { explainRequest, upstreamSettingsFromConfig } from '../../src/cli/explain.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { UpstreamRegistry } from '../../src/resilience/upstream-registry.ts';

const config = loadConfigText(
  `version: 1
defaults:
  upstream:
    budget: { minPerSecond: 5 }
    circuitBreaker: { openFor: 2s }
routes:
  - name: artifacts
    match: { host: artifacts.example.com }
    retry: { attempts: 1, on: [connect-failure] }
    fallback:
      upstream: http://cache.default.svc.cluster.local:8080
upstreams:
  - match: "*.svc.cluster.local"
    budget: { ratio: 0.1 }
    circuitBreaker: { consecutiveFailures: 5, maxOpenFor: 30s }
    maxConcurrent: 200
  - match: "[::1]:9000"
    circuitBreaker: { minRequests: 80 }
`,
  'explain.yaml',
);

function upstreamLines(url: string, authority: string): string[] {
  const out = explainRequest(config, upstreamSettingsFromConfig(config), 'GET', url, {});
  const lines = out.split('\n');
  const at = lines.indexOf(`upstream ${authority}:`);
  expect(at, out).toBeGreaterThanOrEqual(0);
  return lines.slice(at + 1, at + 4).map((line) => line.trim());
}

describe('explain: upstream budget and breaker', () => {
  it("prints a rule's settings merged over defaults.upstream", () => {
    expect(
      upstreamLines('http://api.default.svc.cluster.local/', 'api.default.svc.cluster.local:80'),
    ).toEqual([
      'budget: ratio 0.1, minPerSecond 5, window 10s',
      'circuitBreaker: failureRatio 1, minRequests 50, consecutiveFailures 5, window 10s, failingFor 1.5s, openFor 2s, openForRequests 100, maxOpenFor 30s, halfOpenRequests 1',
      'maxConcurrent: 200',
    ]);
  });

  it('prints defaults.upstream over the embedded defaults where no rule matches', () => {
    expect(upstreamLines('http://example.com:8080/x', 'example.com:8080')).toEqual([
      'budget: ratio 0.2, minPerSecond 5, window 10s',
      'circuitBreaker: failureRatio 1, minRequests 50, consecutiveFailures 0, window 10s, failingFor 1.5s, openFor 2s, openForRequests 100, maxOpenFor 8s, halfOpenRequests 1',
      'maxConcurrent: 1000',
    ]);
  });

  it("prints the fallback upstream's own settings", () => {
    const lines = upstreamLines(
      'http://artifacts.example.com/pkg',
      'cache.default.svc.cluster.local:8080',
    );
    expect(lines[0]).toBe('budget: ratio 0.1, minPerSecond 5, window 10s');
  });

  it('picks the settings the upstream registry applies, for every kind of authority', () => {
    const registry = new UpstreamRegistry(config.defaultUpstream, config.upstreams, {
      onTransition: () => {},
    });
    const fromExplain = upstreamSettingsFromConfig(config);
    for (const authority of [
      'api.default.svc.cluster.local:80',
      'svc.cluster.local:80',
      'example.com:443',
      '[::1]:9000',
      '[::1]:9001',
    ]) {
      expect(fromExplain.settingsFor(authority), authority).toEqual(
        registry.settingsFor(authority),
      );
    }
    expect(fromExplain.settingsFor('[::1]:9000').circuitBreaker.minRequests).toBe(80);
  });
});
