import { describe, expect, it } from 'vitest';
import { classifyError, FAILURE_BY_CODE, statusOutcome } from '../../src/retry/failure.ts';
import type { FailureName } from '../../src/vocabulary.ts';

function codeError(code: string, message = code): Error {
  return Object.assign(new Error(message), { code });
}

describe('classifyError', () => {
  // one row per code of the table in src/retry/failure.ts, expectations written out by hand
  const rows: [string, FailureName][] = [
    ['UND_ERR_CONNECT_TIMEOUT', 'connect-failure'],
    ['ECONNREFUSED', 'connect-failure'],
    ['ENOTFOUND', 'connect-failure'],
    ['EAI_AGAIN', 'connect-failure'],
    ['EHOSTUNREACH', 'connect-failure'],
    ['ENETUNREACH', 'connect-failure'],
    ['EADDRNOTAVAIL', 'connect-failure'],
    ['UND_ERR_HEADERS_TIMEOUT', 'timeout'],
    ['ECONNRESET', 'reset'],
    ['ERR_UPSTREAM_RESET', 'reset'],
    ['EPIPE', 'reset'],
    ['UND_ERR_SOCKET', 'reset'],
    ['UND_ERR_CLOSED', 'reset'],
  ];

  it.each(rows)('classifies %s as %s', (code, expected) => {
    expect(classifyError(codeError(code))).toBe(expected);
  });

  it('has a test row for every code in the table', () => {
    expect(Object.keys(FAILURE_BY_CODE).sort()).toEqual(rows.map(([code]) => code).sort());
  });

  it('classifies an unknown code as reset', () => {
    expect(classifyError(codeError('UND_ERR_ABORTED'))).toBe('reset');
  });

  it('classifies an error without a code as reset', () => {
    expect(classifyError(new Error('boom'))).toBe('reset');
  });

  it.each([undefined, null, 'ECONNREFUSED', 42])(
    'classifies the non-object %j as reset',
    (value) => {
      expect(classifyError(value)).toBe('reset');
    },
  );

  it('reads the code of the cause when the error has none', () => {
    const err = new TypeError('fetch failed', { cause: codeError('ECONNREFUSED') });
    expect(classifyError(err)).toBe('connect-failure');
  });

  it('reads the code of the cause when the outer code is not in the table', () => {
    const err = Object.assign(new Error('wrapped', { cause: codeError('ENOTFOUND') }), {
      code: 'ERR_WRAPPED',
    });
    expect(classifyError(err)).toBe('connect-failure');
  });

  it('follows a nested cause chain', () => {
    const err = new Error('a', {
      cause: new Error('b', { cause: codeError('UND_ERR_HEADERS_TIMEOUT') }),
    });
    expect(classifyError(err)).toBe('timeout');
  });

  it('takes the outermost known code', () => {
    const err = Object.assign(new Error('outer', { cause: codeError('ECONNREFUSED') }), {
      code: 'ECONNRESET',
    });
    expect(classifyError(err)).toBe('reset');
  });

  it('stops on a cyclic cause chain', () => {
    const a: Error & { cause?: unknown } = new Error('a');
    a.cause = new Error('b', { cause: a });
    expect(classifyError(a)).toBe('reset');
  });

  it('reads the code of a plain object', () => {
    expect(classifyError({ code: 'EHOSTUNREACH' })).toBe('connect-failure');
  });

  it('does not take an inherited property for a table row', () => {
    expect(classifyError(codeError('toString'))).toBe('reset');
  });
});

describe('statusOutcome', () => {
  it.each([
    [100, '1xx'],
    [199, '1xx'],
    [200, '2xx'],
    [204, '2xx'],
    [301, '3xx'],
    [404, '4xx'],
    [429, '4xx'],
    [500, '5xx'],
    [503, '5xx'],
    [599, '5xx'],
  ])('labels %i as %s', (status, outcome) => {
    expect(statusOutcome(status)).toBe(outcome);
  });

  it('clamps a status above 599 into 5xx', () => {
    expect(statusOutcome(600)).toBe('5xx');
  });
});
