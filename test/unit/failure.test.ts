import { describe, expect, it } from 'vitest';
import {
  classifyDialError,
  classifyError,
  FAILURE_BY_CODE,
  statusOutcome,
} from '../../src/retry/failure.ts';
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
    ['ECONNRESET', 'reset'],
    ['ERR_UPSTREAM_RESET', 'reset'],
    ['EPIPE', 'reset'],
    ['UND_ERR_SOCKET', 'reset'],
    ['UND_ERR_CLOSED', 'reset'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'upstream-certificate'],
    ['UNABLE_TO_GET_ISSUER_CERT', 'upstream-certificate'],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'upstream-certificate'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'upstream-certificate'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'upstream-certificate'],
    ['CERT_HAS_EXPIRED', 'upstream-certificate'],
    ['CERT_NOT_YET_VALID', 'upstream-certificate'],
    ['CERT_REVOKED', 'upstream-certificate'],
    ['CERT_UNTRUSTED', 'upstream-certificate'],
    ['CERT_REJECTED', 'upstream-certificate'],
    ['CERT_SIGNATURE_FAILURE', 'upstream-certificate'],
    ['INVALID_CA', 'upstream-certificate'],
    ['INVALID_PURPOSE', 'upstream-certificate'],
    ['PATH_LENGTH_EXCEEDED', 'upstream-certificate'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'upstream-certificate'],
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
      cause: new Error('b', { cause: codeError('CERT_HAS_EXPIRED') }),
    });
    expect(classifyError(err)).toBe('upstream-certificate');
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

describe('classifyDialError', () => {
  // nothing was sent on a dial, so only a bad certificate is not a connect-failure
  it.each([
    ['ECONNRESET', 'connect-failure'],
    ['ECONNREFUSED', 'connect-failure'],
    ['EPIPE', 'connect-failure'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'connect-failure'],
    ['CERT_HAS_EXPIRED', 'upstream-certificate'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'upstream-certificate'],
  ])('classifies %s met while dialling as %s', (code, expected) => {
    expect(classifyDialError(codeError(code))).toBe(expected);
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
