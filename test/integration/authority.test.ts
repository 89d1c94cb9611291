/**
 * One spelling of an upstream end to end (routing/authority.ts): however a client writes the
 * host, the route, the budget and breaker, the access line and the metric label agree, while
 * the upstream is still asked with the client's own spelling in Host.
 */
import { describe, expect, it } from 'vitest';
import { parsePrometheus, samplesOf } from '../helpers/cli.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { startProxy, viaProxy } from '../helpers/proxy.ts';
import { reply, startUpstream } from '../helpers/upstream.ts';

closeAfterEach();

describe('the spelling of an upstream', () => {
  it('makes every spelling of one address one route, one breaker and one label', async () => {
    const up = await startUpstream([reply(503, 'down')]);
    // one try per request on the route; the default route would make three
    const px = await startProxy(`routes:
  - name: local
    match: { host: 127.0.0.1 }
    retry: { attempts: 1 }
upstreams:
  - match: 127.0.0.1
    circuitBreaker: { consecutiveFailures: 3, failingFor: 0ms }
`);
    const spellings = ['127.0.0.1', '0x7f.1', '2130706433', '127.1'];
    const answers = [];
    for (const host of spellings) {
      answers.push(await viaProxy(px.port, 'GET', `http://${host}:${up.port}/`));
    }
    // three failed tries under three spellings opened the one breaker they share
    expect(answers.map((a) => a.headers['x-reprise-error'] ?? a.status)).toEqual([
      503,
      503,
      503,
      'circuit-open',
    ]);
    expect(up.seen.map((s) => s.headers.host)).toEqual(
      spellings.slice(0, 3).map((host) => `${host}:${up.port}`),
    );
    const authority = `127.0.0.1:${up.port}`;
    expect(px.requests().map((line) => [line.route, line.upstream])).toEqual(
      spellings.map(() => ['local', authority]),
    );
    const metrics = parsePrometheus((await px.app.metrics?.text()) ?? '');
    const labels = samplesOf(metrics, 'reprise_requests_total').map((s) => s.labels.upstream);
    expect(new Set(labels)).toEqual(new Set([authority]));
  });
});
