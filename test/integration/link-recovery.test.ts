/**
 * The try kept for a retry starts when the link is back: quick answers to other requests on the
 * same upstream while every try of a request is stuck. Real proxy, real loopback upstream, the
 * proxy's clock stepped by the test.
 */
import { describe, expect, it } from 'vitest';
import { manualClock, until } from '../helpers/clock.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { FAST, startProxy, viaProxy } from '../helpers/proxy.ts';
import { hang, reply, startUpstream } from '../helpers/upstream.ts';

closeAfterEach();

const HEDGED = `${FAST}      attempts: 3\n      hedge: { after: 50ms, max: 2 }\n`;

describe('a request whose tries are all stuck', () => {
  it('starts its last try once two other requests are answered at once', async () => {
    // the stuck request's two tries, two quick answers to others, then its last try
    const up = await startUpstream([
      hang(),
      hang(),
      reply(200, 'other'),
      reply(200, 'other'),
      reply(200, 'fresh'),
    ]);
    const clock = manualClock();
    const px = await startProxy(HEDGED, clock.options);
    const stuck = viaProxy(px.port, 'GET', `${up.origin}/stuck`);
    await until(() => up.heads === 1 && clock.armedFor(50) === 1);
    await clock.advance(50);
    await until(() => up.heads === 2);
    // the hedge has waited what a hedge waits for: both tries are late
    await clock.advance(50);
    for (const path of ['/a', '/b']) {
      const res = await viaProxy(px.port, 'GET', `${up.origin}${path}`);
      expect(res.body.toString()).toBe('other');
    }
    const res = await stuck;
    expect(res.body.toString()).toBe('fresh');
    expect(up.seen.map((s) => s.headers['x-reprise-attempt'])).toEqual(['1', '2', '1', '1', '3']);
    const line = px.requests().find((l) => l.path === '/stuck');
    expect(line).toMatchObject({ status: 200, attempts: 3, won: 3, hedges: ['lost', 'won'] });
  });
});
