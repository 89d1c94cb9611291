import { describe, expect, it } from 'vitest';
import {
  canonicalHost,
  isLoopbackHost,
  parseAuthority,
  splitAuthority,
  splitHostPort,
} from '../../src/routing/authority.ts';

describe('parseAuthority', () => {
  it('spells every form of one upstream the same way', () => {
    const spellings = ['API.Example.com', 'api.example.com.', 'api.example.com:80'];
    for (const text of spellings) {
      expect(parseAuthority(text, 80)?.authority).toBe('api.example.com:80');
    }
  });

  it('compresses an IPv6 literal and keeps its brackets', () => {
    expect(parseAuthority('[0:0:0:0:0:0:0:1]:8080')).toMatchObject({
      host: '[::1]',
      authority: '[::1]:8080',
      dialHost: '0:0:0:0:0:0:0:1',
    });
  });

  it('reads a numeric IPv4 spelling as the address it reaches', () => {
    expect(parseAuthority('0x7f.1:3128')?.authority).toBe('127.0.0.1:3128');
    expect(parseAuthority('2130706433', 80)?.authority).toBe('127.0.0.1:80');
  });

  it('keeps the client spelling for connecting and for Host', () => {
    expect(parseAuthority('Payments.Default.:8080')).toEqual({
      host: 'payments.default',
      port: 8080,
      authority: 'payments.default:8080',
      dialHost: 'payments.default.',
      hostHeader: 'payments.default.:8080',
    });
  });

  it('takes the default port only when one is given', () => {
    expect(parseAuthority('example.com', 443)?.port).toBe(443);
    expect(parseAuthority('example.com')).toBeUndefined();
  });

  it.each([
    '',
    ':80',
    '.',
    'user@example.com',
    'example.com:0',
    'example.com:65536',
    'example.com:http',
    'exa mple.com',
    'under_score.example',
    '[::1',
    '[not-ipv6]:80',
    '[1.2.3.4]:80',
  ])('refuses %j', (text) => {
    expect(parseAuthority(text, 80)).toBeUndefined();
  });
});

describe('splitHostPort', () => {
  it('splits at the last colon unless the text ends in an IPv6 literal', () => {
    expect(splitHostPort('example.com:8080')).toEqual({ host: 'example.com', port: 8080 });
    expect(splitHostPort('[::1]:8080')).toEqual({ host: '[::1]', port: 8080 });
    expect(splitHostPort('[::1]')).toEqual({ host: '[::1]', port: undefined });
    expect(splitHostPort('example.com')).toEqual({ host: 'example.com', port: undefined });
  });

  it('says what is wrong with a port', () => {
    expect(splitHostPort('example.com:99999')).toBe('port must be at most 65535');
    expect(splitHostPort('example.com:x')).toBe('"x" is not a port');
  });
});

describe('splitAuthority', () => {
  it('gives the canonical host and the port, -1 when there is none', () => {
    expect(splitAuthority('API.example.com.:443')).toEqual({ host: 'api.example.com', port: 443 });
    expect(splitAuthority('[::1]:8080')).toEqual({ host: '[::1]', port: 8080 });
    expect(splitAuthority('[::1]')).toEqual({ host: '[::1]', port: -1 });
    expect(splitAuthority('example.com')).toEqual({ host: 'example.com', port: -1 });
  });
});

describe('canonicalHost', () => {
  it.each([
    ['Example.COM.', 'example.com'],
    ['::1', '[::1]'],
    ['[::FFFF:127.0.0.1]', '[::ffff:7f00:1]'],
    ['127.1', '127.0.0.1'],
    ['017700000001', '127.0.0.1'],
    ['name.123', 'name.123'],
  ])('%s → %s', (text, canonical) => {
    expect(canonicalHost(text)).toBe(canonical);
  });
});

describe('isLoopbackHost', () => {
  it.each([
    ['localhost', true],
    ['LOCALHOST.', true],
    ['127.0.0.1', true],
    ['127.9.9.9', true],
    ['::1', true],
    ['[::1]', true],
    ['0.0.0.0', false],
    ['10.0.0.1', false],
    ['example.com', false],
  ])('%s: %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});
