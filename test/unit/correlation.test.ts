import { describe, expect, it } from 'vitest';
import { traceIdOf } from '../../src/proxy/correlation.ts';
import { socketAddress } from '../../src/routing/authority.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

describe('traceIdOf (W3C Trace Context traceparent)', () => {
  it('reads the trace id of a valid traceparent', () => {
    expect(traceIdOf(`00-${TRACE}-00f067aa0ba902b7-01`)).toBe(TRACE);
  });

  it('reads a future version with more fields after the flags', () => {
    expect(traceIdOf(`01-${TRACE}-00f067aa0ba902b7-01-extra`)).toBe(TRACE);
  });

  it.each([
    ['version ff', `ff-${TRACE}-00f067aa0ba902b7-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`],
    ['an all-zero parent id', `00-${TRACE}-0000000000000000-01`],
    ['upper-case hex', `00-${TRACE.toUpperCase()}-00f067aa0ba902b7-01`],
    ['a short trace id', `00-${TRACE.slice(1)}-00f067aa0ba902b7-01`],
    ['garbage', 'not a traceparent'],
  ])('gives none for %s', (_name, value) => {
    expect(traceIdOf(value)).toBeUndefined();
  });

  it('gives none for two traceparent headers or none at all', () => {
    expect(traceIdOf([`00-${TRACE}-00f067aa0ba902b7-01`, 'x'])).toBeUndefined();
    expect(traceIdOf(undefined)).toBeUndefined();
  });
});

describe('socketAddress', () => {
  it('writes ip:port, with IPv6 in brackets', () => {
    expect(socketAddress('127.0.0.1', 80)).toBe('127.0.0.1:80');
    expect(socketAddress('::1', 3128)).toBe('[::1]:3128');
    expect(socketAddress(undefined, undefined)).toBe('');
  });
});
