import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createLogger,
  logConfigError,
  logConfigLoaded,
  logRequestDone,
  logRetry,
  logSuppressed,
} from '../../src/log.ts';
import { LogWriter } from '../../src/log-writer.ts';
import { makeSummary } from '../helpers/policy-factory.ts';

/** A logger writing into an array; `lines()` parses what it wrote. */
function sink(level = 'info') {
  const raw: string[] = [];
  const logger = createLogger({ level, destination: { write: (line) => void raw.push(line) } });
  return {
    logger,
    raw,
    lines: () => raw.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

const done = makeSummary({
  attempts: 3,
  outcomes: ['5xx', 'reset', '2xx'],
  tryUpstreams: ['api.example.com:80', 'api.example.com:80', 'api.example.com:80'],
  retryReasons: ['503', 'reset'],
  retryUpstreams: ['api.example.com:80', 'api.example.com:80'],
  durationMs: 57,
});

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('log', () => {
  it('writes one info line per finished request with its fields', () => {
    const { logger, lines } = sink();
    logRequestDone(logger, done);
    expect(lines()).toEqual([
      expect.objectContaining({
        level: 'info',
        service: 'reprise',
        msg: 'request',
        route: 'api',
        upstream: 'api.example.com:80',
        method: 'GET',
        path: '/v1/items',
        status: 200,
        attempts: 3,
        retries: ['503', 'reset'],
        durationMs: 57,
      }),
    ]);
  });

  it('writes the join fields, and leaves out the ones a request did not have', () => {
    const { logger, lines } = sink();
    logRequestDone(logger, { ...done, traceId: '4bf92f3577b34da6a3ce929d0e0e4736' });
    logRequestDone(logger, { ...done, upstreamAddress: undefined });
    const [traced, unconnected] = lines();
    expect(traced).toMatchObject({
      requestId: 'r-1',
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      client: '127.0.0.1:50000',
      upstreamAddress: '127.0.0.1:80',
      bytesIn: 100,
      bytesOut: 200,
    });
    expect(unconnected).not.toHaveProperty('traceId');
    expect(unconnected).not.toHaveProperty('upstreamAddress');
  });

  it('writes the same line JSON.stringify would, key for key, escaping what JSON must', () => {
    const { logger, raw } = sink();
    const odd = {
      ...done,
      requestId: 'a "quoted" \\ id\n\u0001\ud800',
      path: '/caf\u00e9/"x"',
      tunnel: 'intercepted' as const,
      suppressed: 'budget' as const,
      hedges: ['lost', 'won'] as const,
      wonAttempt: 2,
      fallback: 'timeout',
      error: 'forbidden',
      reason: 'port "25" is not in connect.allowedPorts',
    };
    logRequestDone(logger, odd);
    const line = raw[0] as string;
    const parsed = JSON.parse(line) as Record<string, unknown>;
    const { level, time, service, msg, ...fields } = parsed;
    expect({ level, service, msg }).toEqual({ level: 'info', service: 'reprise', msg: 'request' });
    expect(typeof time).toBe('number');
    expect(JSON.stringify(fields)).toBe(
      JSON.stringify({
        requestId: odd.requestId,
        client: odd.client,
        route: odd.route,
        upstream: odd.upstream,
        upstreamAddress: odd.upstreamAddress,
        tunnel: odd.tunnel,
        method: odd.method,
        path: odd.path,
        status: odd.status,
        attempts: odd.attempts,
        retries: odd.retryReasons,
        suppressed: odd.suppressed,
        won: odd.wonAttempt,
        hedges: odd.hedges,
        fallback: odd.fallback,
        error: odd.error,
        reason: odd.reason,
        bytesIn: odd.bytesIn,
        bytesOut: odd.bytesOut,
        durationMs: odd.durationMs,
      }),
    );
    expect(line.endsWith('}\n')).toBe(true);
  });

  it('writes the same bytes into the batching writer as to any other destination', () => {
    const odd = { ...done, requestId: 'r "1" \u00e9\n', path: `/${'p'.repeat(3000)}?q=1` };
    const written: Buffer[] = [];
    const writer = new LogWriter({
      writeBytes: (bytes) => {
        written.push(Buffer.from(bytes));
        return bytes.length;
      },
    });
    const batched = createLogger({ level: 'info', destination: writer });
    const { logger, raw } = sink();
    vi.useFakeTimers({ now: 1_700_000_000_000, toFake: ['Date'] });
    try {
      for (const s of [done, odd, done]) {
        logRequestDone(batched, s);
        logRequestDone(logger, s);
      }
    } finally {
      vi.useRealTimers();
    }
    writer.flush();
    expect(Buffer.concat(written).toString()).toBe(raw.join(''));
    expect(raw.map((line) => JSON.parse(line).requestId)).toEqual(['r-1', odd.requestId, 'r-1']);
  });

  it('writes the access line in the shape of every other line, in order with them', () => {
    const { logger, raw, lines } = sink();
    logConfigLoaded(logger, undefined);
    logRequestDone(logger, { ...done, route: 'a "quoted" \\ route' });
    logConfigLoaded(logger, 'second');
    expect(raw).toHaveLength(3);
    for (const line of raw) expect(line.endsWith('}\n')).toBe(true);
    const [before, access, after] = lines() as Record<string, unknown>[];
    const head = (line: Record<string, unknown> | undefined) => Object.keys(line ?? {}).slice(0, 3);
    expect(head(access)).toEqual(head(before));
    expect(Object.keys(access ?? {}).at(-1)).toBe('msg');
    expect(access?.route).toBe('a "quoted" \\ route');
    expect(typeof access?.time).toBe('number');
    expect(after?.source).toBe('second');
  });

  it('writes no access line above info', () => {
    const { logger, raw } = sink('warn');
    logRequestDone(logger, done);
    expect(raw).toEqual([]);
  });

  it('names the suppressed cause, the fallback and the error when set', () => {
    const { logger, lines } = sink();
    logRequestDone(logger, {
      ...done,
      status: 502,
      suppressed: 'budget',
      fallback: 'connect-failure',
      error: 'connect-failure',
    });
    expect(lines()[0]).toMatchObject({
      suppressed: 'budget',
      fallback: 'connect-failure',
      error: 'connect-failure',
    });
  });

  it('never logs a query string', () => {
    const { logger, raw, lines } = sink();
    logRequestDone(logger, { ...done, path: '/v1/items?token=s3cret&x=1' });
    expect(lines()[0]?.path).toBe('/v1/items');
    expect(raw.join('')).not.toContain('s3cret');
  });

  it('redacts authorization, proxy-authorization, cookie and set-cookie headers', () => {
    const { logger, raw, lines } = sink();
    const secrets = {
      authorization: 'Bearer secret-1',
      'proxy-authorization': 'Basic secret-2',
      cookie: 'session=secret-3',
      'set-cookie': ['id=secret-4'],
      accept: 'text/plain',
    };
    logger.info({ headers: secrets, req: { headers: secrets }, res: { headers: secrets } }, 'x');
    expect(raw.join('')).not.toMatch(/secret-\d/);
    const line = lines()[0] as { req: { headers: Record<string, unknown> } };
    expect(line.req.headers.authorization).toBe('[redacted]');
    expect(line.req.headers.accept).toBe('text/plain');
  });

  it('logs retry decisions at debug only', () => {
    const where = { requestId: 'r-7', route: 'api', upstream: 'a:80' };
    const retry = { ...where, attempt: 1, reason: '503', delayMs: 40 };
    const suppressed = { ...where, attempt: 2, cause: 'budget' };
    const info = sink('info');
    logRetry(info.logger, retry);
    logSuppressed(info.logger, suppressed);
    expect(info.raw).toEqual([]);
    const debug = sink('debug');
    logRetry(debug.logger, retry);
    logSuppressed(debug.logger, suppressed);
    expect(debug.lines()).toEqual([
      expect.objectContaining({ level: 'debug', msg: 'retry', ...retry }),
      expect.objectContaining({ level: 'debug', msg: 'retry suppressed', ...suppressed }),
    ]);
  });

  it('logs the config source and every config error line', () => {
    const { logger, lines } = sink();
    logConfigLoaded(logger, '/etc/reprise.yaml');
    logConfigLoaded(logger, undefined);
    const errors = ['r.yaml:3:5: retry.attempts: must be >= 1', 'r.yaml:9:1: listen: bad address'];
    logConfigError(logger, errors);
    expect(lines()).toEqual([
      expect.objectContaining({ level: 'info', msg: 'config loaded', source: '/etc/reprise.yaml' }),
      expect.objectContaining({ level: 'info', msg: 'config loaded', source: 'embedded defaults' }),
      expect.objectContaining({ level: 'error', msg: 'config rejected', errors }),
    ]);
  });

  it('takes the level from LOG_LEVEL when none is given', () => {
    vi.stubEnv('LOG_LEVEL', 'warn');
    expect(createLogger({ destination: { write: () => {} } }).level).toBe('warn');
  });

  it('rejects an unknown level, naming the known ones', () => {
    expect(() => createLogger({ level: 'verbose' })).toThrow(/unknown level "verbose".*debug/);
  });
});
