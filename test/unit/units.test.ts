import { describe, expect, it } from 'vitest';
import {
  formatDuration,
  formatSize,
  parseAddress,
  parseCidr,
  parseDuration,
  parseOrigin,
  parseSize,
} from '../../src/config/units.ts';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['0ms', 0],
    ['2s', 2000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['0.5m', 30_000],
  ])('reads %s as %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    '',
    '10',
    '10 s',
    ' 10s',
    '-1s',
    '+1s',
    '1d',
    '1S',
    '1.s',
    '.5s',
    's',
    '1e3ms',
    '1m30s',
    '99999999999999999999h',
  ])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('parseSize', () => {
  it.each([
    ['512B', 512],
    ['100', 100],
    ['0', 0],
    ['16KiB', 16 * 1024],
    ['1MiB', 1024 ** 2],
    ['64MiB', 64 * 1024 ** 2],
    ['2GiB', 2 * 1024 ** 3],
    ['1.5KiB', 1536],
    ['0.5MiB', 512 * 1024],
  ])('reads %s as %i bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it('takes a plain number as bytes', () => {
    expect(parseSize(4096)).toBe(4096);
  });

  it.each(['', '1KB', '1MB', '1kib', '1 KiB', '-1', '1.5B', '1.5', 'MiB', '1TiB'])(
    'rejects %j',
    (text) => {
      expect(parseSize(text)).toBeUndefined();
    },
  );

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('rejects the number %d', (value) => {
    expect(parseSize(value)).toBeUndefined();
  });
});

describe('parseAddress', () => {
  it.each([
    ['127.0.0.1:3128', { host: '127.0.0.1', port: 3128 }],
    ['localhost:9901', { host: 'localhost', port: 9901 }],
    ['0.0.0.0:0', { host: '0.0.0.0', port: 0 }],
    ['[::1]:3128', { host: '::1', port: 3128 }],
    ['[::]:8080', { host: '::', port: 8080 }],
  ])('reads %s', (text, address) => {
    expect(parseAddress(text)).toEqual(address);
  });

  it.each(['127.0.0.1', ':3128', '::1:3128', '[zz]:1', '[::1]', 'a b:1', 'host:port', 'h:123456'])(
    'rejects %j with the expected shape',
    (text) => {
      expect(parseAddress(text)).toBe('must be host:port, such as 127.0.0.1:3128 or [::1]:3128');
    },
  );

  it('rejects a port above 65535', () => {
    expect(parseAddress('127.0.0.1:65536')).toBe('port must be at most 65535');
  });
});

describe('parseOrigin', () => {
  it('uses port 80 when none is given', () => {
    expect(parseOrigin('http://cache.local')).toEqual({
      origin: 'http://cache.local:80',
      authority: 'cache.local:80',
      hostHeader: 'cache.local:80',
      secure: false,
    });
  });

  it('keeps an explicit port and accepts a trailing slash', () => {
    expect(parseOrigin('http://Cache.Local:8080/')).toEqual({
      origin: 'http://cache.local:8080',
      authority: 'cache.local:8080',
      hostHeader: 'cache.local:8080',
      secure: false,
    });
  });

  it('keys a trailing-dot name without the dot, and connects as written', () => {
    expect(parseOrigin('http://cache.local.:8080')).toEqual({
      origin: 'http://cache.local.:8080',
      authority: 'cache.local:8080',
      hostHeader: 'cache.local.:8080',
      secure: false,
    });
  });

  it('keeps IPv6 hosts in brackets', () => {
    expect(parseOrigin('http://[::1]:8080')).toEqual({
      origin: 'http://[::1]:8080',
      authority: '[::1]:8080',
      hostHeader: '[::1]:8080',
      secure: false,
    });
  });

  it('accepts https://, port 443 when none is given', () => {
    expect(parseOrigin('HTTPS://Cache.Local')).toEqual({
      origin: 'https://cache.local:443',
      authority: 'cache.local:443',
      hostHeader: 'cache.local:443',
      secure: true,
    });
  });

  it.each([
    'ftp://cache.local',
    'https://cache.local/v1',
    'http://cache.local/v1',
    'http://cache.local?x=1',
    'http://cache.local#x',
    'http://user:pw@cache.local',
    'http://cache.local:99999',
    'http://under_score.local',
    'cache.local:80',
  ])('rejects %j', (text) => {
    expect(parseOrigin(text)).toBe('must be http:// or https://host[:port] with no path');
  });

  it('rejects port 0', () => {
    expect(parseOrigin('http://cache.local:0')).toBe('port must be 1-65535');
  });
});

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', { address: '10.0.0.0', prefix: 8, family: 'ipv4' }],
    ['192.168.1.5', { address: '192.168.1.5', prefix: 32, family: 'ipv4' }],
    ['fd00::/8', { address: 'fd00::', prefix: 8, family: 'ipv6' }],
    ['::1', { address: '::1', prefix: 128, family: 'ipv6' }],
    ['0.0.0.0/0', { address: '0.0.0.0', prefix: 0, family: 'ipv4' }],
  ])('reads %s', (text, cidr) => {
    expect(parseCidr(text)).toEqual(cidr);
  });

  it.each([
    ['10.0.0.0/33', 'prefix length must be 0-32'],
    ['::1/129', 'prefix length must be 0-128'],
    ['10.0.0.0/', 'prefix length must be 0-32'],
    ['10.0.0.0/x', 'prefix length must be 0-32'],
    ['10.0.0/8', 'must be an IP address or CIDR, such as 10.0.0.0/8 or ::1/128'],
    ['localhost', 'must be an IP address or CIDR, such as 10.0.0.0/8 or ::1/128'],
  ])('rejects %j', (text, message) => {
    expect(parseCidr(text)).toBe(message);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [50, '50ms'],
    [999, '999ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [10_000, '10s'],
    [90_000, '90s'],
    [60_000, '1m'],
    [3_600_000, '1h'],
  ])('formats %i as %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('formatSize', () => {
  it.each([
    [100, '100B'],
    [1000, '1000B'],
    [16 * 1024, '16KiB'],
    [1024 * 1024, '1MiB'],
    [64 * 1024 * 1024, '64MiB'],
    [1536, '1536B'],
  ])('formats %i as %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });
});
