/**
 * A fault inside reprise is answered as one (500 `internal`) and logged at error level; it is
 * never blamed on the client with a 4xx.
 */
import { describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/types.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { startProxy, viaProxy } from '../helpers/proxy.ts';
import { reply, startUpstream } from '../helpers/upstream.ts';

closeAfterEach();

/** The running config, with a route table that throws when the attempt loop reads it. */
function withFaultyRoutes(config: Config): Config {
  return Object.defineProperty({ ...config }, 'routes', {
    get() {
      throw new Error('injected fault: route table unreadable');
    },
  });
}

describe('an internal fault', () => {
  it('answers 500 internal and logs the error at error level', async () => {
    const upstream = await startUpstream([reply(200, 'ok')]);
    const proxy = await startProxy();
    proxy.app.reload(withFaultyRoutes(proxy.app.config()));
    const res = await viaProxy(proxy.port, 'GET', `${upstream.origin}/x`);
    expect(res.status).toBe(500);
    expect(res.headers['x-reprise-error']).toBe('internal');
    expect(JSON.parse(res.body.toString())).toMatchObject({ error: 'internal', attempts: 0 });
    expect(upstream.seen).toHaveLength(0);
    const errors = proxy.logs.filter((line) => line.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ msg: 'unexpected error' });
    expect(JSON.stringify(errors[0])).toContain('injected fault: route table unreadable');
  });
});
