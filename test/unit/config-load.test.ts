import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config-error.ts';
import { checkConfigFile, loadConfigFile, loadConfigText } from '../../src/config/load.ts';

/** The lines `reprise check` would print for this YAML (one line per argument). */
function errorsOf(...lines: string[]): string[] {
  try {
    loadConfigText(lines.join('\n'), 'c.yaml');
  } catch (error) {
    if (error instanceof ConfigError) return error.format();
    throw error;
  }
  return [];
}

describe('YAML syntax', () => {
  it('reports a syntax error with its position and no key path', () => {
    expect(errorsOf('version: 1', 'listen: @x')).toEqual([
      'c.yaml:2:9: Plain value cannot start with reserved character @',
    ]);
  });

  it('reports a duplicate key at the second one', () => {
    expect(errorsOf('version: 1', 'listen: 127.0.0.1:1', 'listen: 127.0.0.1:2')).toEqual([
      'c.yaml:3:1: Map keys must be unique',
    ]);
  });
});

describe('schema errors', () => {
  it('requires version, pointing at the document for an empty file', () => {
    expect(errorsOf('')).toEqual(['c.yaml:1:1: version: is required']);
  });

  it('requires version 1', () => {
    expect(errorsOf('version: 2')).toEqual(['c.yaml:1:10: version: must be 1']);
  });

  it('rejects a document that is not a map', () => {
    expect(errorsOf('- version: 1')).toEqual(['c.yaml:1:1: must be a map of keys']);
  });

  it('points at an unknown key itself and suggests a close one', () => {
    expect(
      errorsOf('version: 1', 'defaults:', '  route:', '    retry:', '      atempts: 2'),
    ).toEqual(['c.yaml:5:7: defaults.route.retry.atempts: unknown key (did you mean attempts?)']);
  });

  it('says only "unknown key" when nothing is close', () => {
    expect(errorsOf('version: 1', 'proxy: {}')).toEqual(['c.yaml:2:1: proxy: unknown key']);
  });

  it('places a missing key at the map that should hold it', () => {
    expect(errorsOf('version: 1', 'routes:', '  - match: { host: a.com }')).toEqual([
      'c.yaml:3:5: routes[0].name: is required',
    ]);
  });

  it('rejects attempts: 0', () => {
    expect(
      errorsOf(
        'version: 1',
        'routes:',
        '  - name: a',
        '    match: { host: a.com }',
        '    retry: { attempts: 0 }',
      ),
    ).toEqual(['c.yaml:5:24: routes[0].retry.attempts: must be at least 1']);
  });

  it('rejects a wrong type', () => {
    expect(errorsOf('version: 1', 'defaults: { route: { retry: { attempts: "3" } } }')).toEqual([
      'c.yaml:2:41: defaults.route.retry.attempts: must be a whole number',
    ]);
  });

  it('rejects a ratio above 1', () => {
    expect(errorsOf('version: 1', 'defaults: { upstream: { budget: { ratio: 1.5 } } }')).toEqual([
      'c.yaml:2:42: defaults.upstream.budget.ratio: must be at most 1',
    ]);
  });

  it('rejects a failure ratio of 0, naming the way to turn the breaker off', () => {
    expect(
      errorsOf('version: 1', 'defaults: { upstream: { circuitBreaker: { failureRatio: 0 } } }'),
    ).toEqual([
      'c.yaml:2:57: defaults.upstream.circuitBreaker.failureRatio: must be a number above 0 and at most 1 (to turn the breaker off, write circuitBreaker.enabled: false instead)',
    ]);
  });

  it('rejects a minRequests above the cap, as an older file that turned the breaker off has it', () => {
    expect(
      errorsOf(
        'version: 1',
        'upstreams:',
        '  - match: api.example.com',
        '    circuitBreaker:',
        '      minRequests: 1000000',
      ),
    ).toEqual([
      'c.yaml:5:20: upstreams[0].circuitBreaker.minRequests: must be a whole number from 1 to 10000 (to turn the breaker off, write circuitBreaker.enabled: false instead)',
    ]);
  });

  it('rejects a minRequests of 0 with the same hint', () => {
    expect(
      errorsOf('version: 1', 'defaults: { upstream: { circuitBreaker: { minRequests: 0 } } }'),
    ).toEqual([
      'c.yaml:2:56: defaults.upstream.circuitBreaker.minRequests: must be a whole number from 1 to 10000 (to turn the breaker off, write circuitBreaker.enabled: false instead)',
    ]);
  });

  it('accepts circuitBreaker.enabled: false and refuses a value that is not true or false', () => {
    expect(
      errorsOf('version: 1', 'defaults: { upstream: { circuitBreaker: { enabled: false } } }'),
    ).toEqual([]);
    expect(
      errorsOf('version: 1', 'defaults: { upstream: { circuitBreaker: { enabled: "no" } } }'),
    ).toEqual(['c.yaml:2:52: defaults.upstream.circuitBreaker.enabled: must be true or false']);
  });

  it('rejects an empty allowedClients list', () => {
    expect(errorsOf('version: 1', 'access: { allowedClients: [] }')).toEqual([
      'c.yaml:2:27: access.allowedClients: must have at least 1 item',
    ]);
  });

  it('rejects a method that is not a token', () => {
    expect(
      errorsOf('version: 1', 'defaults: { route: { retry: { methods: [GET, "PO ST"] } } }'),
    ).toEqual(['c.yaml:2:46: defaults.route.retry.methods[1]: must be an HTTP method such as GET']);
  });

  it('rejects a duration without a unit', () => {
    expect(errorsOf('version: 1', 'defaults: { route: { timeout: 30 } }')).toEqual([
      'c.yaml:2:31: defaults.route.timeout: must be a duration such as 250ms or 2s',
    ]);
  });

  it('rejects a zero duration where one is needed and a very long one', () => {
    expect(
      errorsOf('version: 1', 'defaults: { route: { timeout: 0s, retry: { perTryTimeout: 25h } } }'),
    ).toEqual([
      'c.yaml:2:31: defaults.route.timeout: must be greater than 0',
      'c.yaml:2:59: defaults.route.retry.perTryTimeout: must be at most 24h',
    ]);
  });

  it('rejects a size with a decimal unit and one out of range', () => {
    expect(
      errorsOf('version: 1', 'limits:', '  maxBufferedBytes: 1MB', '  maxHeaderBytes: 100'),
    ).toEqual([
      'c.yaml:3:21: limits.maxBufferedBytes: must be a size such as 64KiB or 1MiB (B, KiB, MiB, GiB)',
      'c.yaml:4:19: limits.maxHeaderBytes: must be at least 1KiB',
    ]);
  });

  it('rejects an unknown retry.on item and a status out of range', () => {
    const on =
      'must be connect-failure, reset, timeout, body-cut, a status such as 503, or a class such as 5xx';
    expect(
      errorsOf('version: 1', 'defaults: { route: { retry: { on: [5xx, refused, 600, "503"] } } }'),
    ).toEqual([
      `c.yaml:2:41: defaults.route.retry.on[1]: ${on}`,
      `c.yaml:2:50: defaults.route.retry.on[2]: ${on}`,
    ]);
  });

  it('lists the jitter kinds', () => {
    expect(errorsOf('version: 1', 'connect: { retry: { backoff: { jitter: random } } }')).toEqual([
      'c.yaml:2:40: connect.retry.backoff.jitter: must be one of full, equal, decorrelated, none',
    ]);
  });

  it('requires a route match to say something', () => {
    expect(errorsOf('version: 1', 'routes:', '  - name: a', '    match: {}')).toEqual([
      'c.yaml:4:12: routes[0].match: must set at least one of host, path, pathRegex, methods',
    ]);
  });

  it('rejects path and pathRegex together', () => {
    expect(
      errorsOf('version: 1', 'routes:', '  - name: a', '    match: { path: /a, pathRegex: ^/a }'),
    ).toEqual(['c.yaml:4:12: routes[0].match: cannot set both path and pathRegex']);
  });

  it('rejects a pathRegex that does not compile', () => {
    expect(
      errorsOf('version: 1', 'routes:', '  - name: a', "    match: { pathRegex: '^/(a' }"),
    ).toEqual([
      'c.yaml:4:25: routes[0].match.pathRegex: is not a valid regular expression: Unterminated group',
    ]);
  });

  it('rejects a bad host pattern', () => {
    expect(errorsOf('version: 1', 'upstreams:', '  - match: "a*.example.com"')).toEqual([
      'c.yaml:3:12: upstreams[0].match: "a*.example.com" is not a host, "*.suffix", or either with ":port"',
    ]);
  });

  it('rejects a bad CIDR', () => {
    expect(errorsOf('version: 1', 'access: { allowedClients: [10.0.0.0/33] }')).toEqual([
      'c.yaml:2:28: access.allowedClients[0]: prefix length must be 0-32',
    ]);
  });

  it('reserves the route name default', () => {
    expect(
      errorsOf('version: 1', 'routes:', '  - name: default', '    match: { host: a.com }'),
    ).toEqual(['c.yaml:3:11: routes[0].name: default is reserved for defaults.route']);
  });
});

describe('relations', () => {
  it('rejects backoff.max below base, at max when max is written', () => {
    expect(
      errorsOf(
        'version: 1',
        'defaults:',
        '  route:',
        '    retry:',
        '      backoff: { base: 2s, max: 1s }',
      ),
    ).toEqual(['c.yaml:5:33: defaults.route.retry.backoff.max: must be >= backoff.base (2s)']);
  });

  it('reports at base when only base is written there', () => {
    expect(errorsOf('version: 1', 'connect: { retry: { backoff: { base: 5s } } }')).toEqual([
      'c.yaml:2:38: connect.retry.backoff.base: must be <= backoff.max (1s)',
    ]);
  });

  it('reports a broken default once, not again at each route that inherits it', () => {
    expect(
      errorsOf(
        'version: 1',
        'defaults: { route: { retry: { backoff: { base: 2s } } } }',
        'routes:',
        '  - name: a',
        '    match: { host: a.com }',
        '    fallback: { upstream: "http://b.com" }',
      ),
    ).toEqual(['c.yaml:2:48: defaults.route.retry.backoff.base: must be <= backoff.max (1s)']);
  });

  it('checks a fallback retry merged over its route', () => {
    expect(
      errorsOf(
        'version: 1',
        'routes:',
        '  - name: a',
        '    match: { host: a.com }',
        '    retry: { backoff: { base: 500ms } }',
        '    fallback: { upstream: "http://b.com", retry: { backoff: { max: 100ms } } }',
      ),
    ).toEqual([
      'c.yaml:6:68: routes[0].fallback.retry.backoff.max: must be >= backoff.base (500ms)',
    ]);
  });

  it('rejects maxOpenFor below openFor', () => {
    expect(
      errorsOf(
        'version: 1',
        'upstreams:',
        '  - match: a.com',
        '    circuitBreaker: { openFor: 2m }',
      ),
    ).toEqual(['c.yaml:4:32: upstreams[0].circuitBreaker.openFor: must be <= maxOpenFor (8s)']);
  });

  it('requires access.allowedClients when listen is not loopback', () => {
    expect(errorsOf('version: 1', 'listen: 0.0.0.0:3128')).toEqual([
      'c.yaml:2:9: listen: is not a loopback address, so access.allowedClients must be set to the clients that may use this proxy (such as 10.0.0.0/8)',
    ]);
  });

  it('requires it for a listeners port too', () => {
    expect(
      errorsOf('version: 1', 'listeners:', '  - { listen: "[::]:8081", upstream: "http://a.com" }'),
    ).toEqual([
      'c.yaml:3:15: listeners[0].listen: is not a loopback address, so access.allowedClients must be set to the clients that may use this proxy (such as 10.0.0.0/8)',
    ]);
  });

  it('accepts a non-loopback listen once allowedClients is set', () => {
    expect(
      errorsOf('version: 1', 'listen: 0.0.0.0:3128', 'access: { allowedClients: [10.0.0.0/8] }'),
    ).toEqual([]);
  });

  it('accepts loopback names and addresses without allowedClients', () => {
    expect(errorsOf('version: 1', 'listen: localhost:3128', 'admin: "[::1]:9901"')).toEqual([]);
    expect(errorsOf('version: 1', 'listen: 127.0.0.2:3128')).toEqual([]);
  });

  it('rejects a fallback upstream with a path', () => {
    expect(
      errorsOf(
        'version: 1',
        'routes:',
        '  - name: a',
        '    match: { host: a.com }',
        '    fallback: { upstream: "http://b.com/v1" }',
      ),
    ).toEqual([
      'c.yaml:5:27: routes[0].fallback.upstream: must be http:// or https://host[:port] with no path',
    ]);
  });

  it('rejects duplicate route names', () => {
    expect(
      errorsOf(
        'version: 1',
        'routes:',
        '  - { name: a, match: { host: a.com } }',
        '  - { name: a, match: { host: b.com } }',
      ),
    ).toEqual(['c.yaml:4:13: routes[1].name: is already the name of routes[0]']);
  });

  it('rejects two sockets on one port, at the one the file wrote', () => {
    expect(
      errorsOf(
        'version: 1',
        'admin: 127.0.0.1:3128',
        'listeners:',
        '  - { listen: 127.0.0.1:3128, upstream: "http://a.com" }',
      ),
    ).toEqual([
      'c.yaml:2:8: admin: port 3128 is already used by listen',
      'c.yaml:4:15: listeners[0].listen: port 3128 is already used by listen',
    ]);
  });

  it('allows port 0 (any free port) on every socket', () => {
    expect(errorsOf('version: 1', 'listen: 127.0.0.1:0', 'admin: 127.0.0.1:0')).toEqual([]);
  });
});

describe('reporting', () => {
  it('reports every problem at once, in file order', () => {
    expect(
      errorsOf(
        'version: 1',
        'routes:',
        '  - name: a',
        '    match: { host: a.com }',
        '    retry: { attempts: 0, backoff: { base: 2s, max: 1s } }',
        '    timout: 5s',
        'defaults: { route: { timeout: soon } }',
      ),
    ).toEqual([
      'c.yaml:5:24: routes[0].retry.attempts: must be at least 1',
      'c.yaml:5:53: routes[0].retry.backoff.max: must be >= backoff.base (2s)',
      'c.yaml:6:5: routes[0].timout: unknown key (did you mean timeout?)',
      'c.yaml:7:31: defaults.route.timeout: must be a duration such as 250ms or 2s',
    ]);
  });

  it('reports more than typebox reports by default (8)', () => {
    const lines = ['version: 1', 'defaults:', '  route:', '    retry:'];
    for (let i = 0; i < 12; i++) lines.push(`      x${i}: 1`);
    expect(errorsOf(...lines)).toHaveLength(12);
  });

  it('gives one message per bad value', () => {
    expect(errorsOf('version: 1', 'listen: 42')).toEqual([
      'c.yaml:2:9: listen: must be host:port, such as 127.0.0.1:3128 or [::1]:3128',
    ]);
  });

  it('places a problem reached through an alias at the anchored value', () => {
    expect(
      errorsOf(
        'version: 1',
        'defaults: { route: { retry: &r { attempts: 0 } } }',
        'routes:',
        '  - { name: a, match: { host: a.com }, retry: *r }',
      ),
    ).toEqual([
      'c.yaml:2:44: defaults.route.retry.attempts: must be at least 1',
      'c.yaml:2:44: routes[0].retry.attempts: must be at least 1',
    ]);
  });

  it('carries the problems as fields and as the error message', () => {
    try {
      loadConfigText('version: 1\nlisten: nope', 'c.yaml');
      expect.unreachable();
    } catch (error) {
      const configError = error as ConfigError;
      expect(configError.errors).toEqual([
        {
          file: 'c.yaml',
          line: 2,
          col: 9,
          path: 'listen',
          message: 'must be host:port, such as 127.0.0.1:3128 or [::1]:3128',
        },
      ]);
      expect(configError.message).toBe(configError.format().join('\n'));
    }
  });
});

describe('files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reprise-config-'));

  it('names the file in every line', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'version: 1\nlisten: nope\n');
    expect(checkConfigFile(file)).toEqual({
      ok: false,
      lines: [`${file}:2:9: listen: must be host:port, such as 127.0.0.1:3128 or [::1]:3128`],
    });
  });

  it('reports a file it cannot read without a position', () => {
    const file = join(dir, 'missing.yaml');
    expect(checkConfigFile(file)).toEqual({
      ok: false,
      lines: [`${file}: cannot read: no such file`],
    });
  });

  it('accepts the example config', () => {
    expect(checkConfigFile('config/example.yaml')).toEqual({ ok: true });
    expect(loadConfigFile('config/example.yaml').source).toBe('config/example.yaml');
  });
});
