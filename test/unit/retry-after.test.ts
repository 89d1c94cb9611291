import { describe, expect, it } from 'vitest';
import { parseRetryAfterMs } from '../../src/retry/retry-after.ts';

// Sun, 06 Nov 1994 08:49:37 GMT
const DATE_MS = Date.UTC(1994, 10, 6, 8, 49, 37);
const now = DATE_MS - 30_000;

describe('parseRetryAfterMs', () => {
  it('reads delta-seconds as milliseconds', () => {
    expect(parseRetryAfterMs('120', now)).toBe(120_000);
  });

  it('reads 0 seconds as 0', () => {
    expect(parseRetryAfterMs('0', now)).toBe(0);
  });

  it('ignores surrounding whitespace', () => {
    expect(parseRetryAfterMs(' 5 ', now)).toBe(5000);
  });

  it('reads an IMF-fixdate as the time until it', () => {
    expect(parseRetryAfterMs('Sun, 06 Nov 1994 08:49:37 GMT', now)).toBe(30_000);
  });

  it('reads an RFC 850 date', () => {
    expect(parseRetryAfterMs('Sunday, 06-Nov-94 08:49:37 GMT', now)).toBe(30_000);
  });

  it('reads an asctime date as GMT, not local time', () => {
    expect(parseRetryAfterMs('Sun Nov  6 08:49:37 1994', now)).toBe(30_000);
  });

  it('gives 0 for a date in the past', () => {
    expect(parseRetryAfterMs('Sun, 06 Nov 1994 08:49:37 GMT', DATE_MS + 60_000)).toBe(0);
  });

  it('gives undefined when there is no header', () => {
    expect(parseRetryAfterMs(undefined, now)).toBeUndefined();
  });

  it.each([
    '',
    '-5',
    '1.5',
    '+3',
    '5 seconds',
    'soon',
    '0x10',
    'Sun, 06 Nov 1994 08:49:37',
    'Sun, 32 Nov 1994 08:49:37 GMT',
    '2024-01-01T00:00:00Z',
  ])('gives undefined for %j', (value) => {
    expect(parseRetryAfterMs(value, now)).toBeUndefined();
  });
});
