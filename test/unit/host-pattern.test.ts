import { describe, expect, it } from 'vitest';
import { matchesHost, parseHostPattern } from '../../src/routing/host-pattern.ts';
import { hostPattern } from '../helpers/policy-factory.ts';

describe('parseHostPattern', () => {
  it('parses an exact host, lower-cased, with any port', () => {
    expect(parseHostPattern('API.Example.com')).toEqual({
      host: 'api.example.com',
      wildcard: false,
      port: undefined,
      source: 'API.Example.com',
    });
  });

  it('parses a wildcard into its suffix with the leading dot', () => {
    expect(parseHostPattern('*.svc.cluster.local')).toMatchObject({
      host: '.svc.cluster.local',
      wildcard: true,
    });
  });

  it('parses a port', () => {
    expect(parseHostPattern('api.example.com:8080')).toMatchObject({
      host: 'api.example.com',
      port: 8080,
    });
  });

  it('parses a bracketed IPv6 address with a port', () => {
    expect(parseHostPattern('[::1]:8080')).toMatchObject({ host: '[::1]', port: 8080 });
  });

  it('keeps a bracketed IPv6 address without a port whole', () => {
    expect(parseHostPattern('[::1]')).toMatchObject({ host: '[::1]', port: undefined });
  });

  it('spells the host as request authorities are spelled', () => {
    expect(parseHostPattern('API.example.com.')).toMatchObject({ host: 'api.example.com' });
    expect(parseHostPattern('*.Example.com.')).toMatchObject({ host: '.example.com' });
    expect(parseHostPattern('[0:0::1]:8080')).toMatchObject({ host: '[::1]', port: 8080 });
  });

  it.each([
    ['api.example.com:99999', 'bad port'],
    ['api.example.com:http', 'bad port'],
    ['', 'is not a host'],
    ['*.', 'is not a host'],
    ['api.*.com', 'is not a host'],
    ['api.example.com/v1', 'is not a host'],
    ['user@api.example.com', 'is not a host'],
  ])('rejects %j with a message', (source, message) => {
    expect(parseHostPattern(source)).toContain(message);
  });
});

describe('matchesHost', () => {
  it('matches an exact host on any port when the pattern has none', () => {
    expect(matchesHost(hostPattern('api.example.com'), 'api.example.com', 443)).toBe(true);
  });

  it('does not match another host', () => {
    expect(matchesHost(hostPattern('api.example.com'), 'www.example.com', 80)).toBe(false);
  });

  it('does not match another port when the pattern has one', () => {
    expect(matchesHost(hostPattern('api.example.com:8080'), 'api.example.com', 80)).toBe(false);
  });

  it('matches a sub-domain of a wildcard', () => {
    expect(matchesHost(hostPattern('*.example.com'), 'a.b.example.com', 80)).toBe(true);
  });

  it('does not match the bare domain of a wildcard', () => {
    expect(matchesHost(hostPattern('*.example.com'), 'example.com', 80)).toBe(false);
  });

  it('does not match a host that merely ends with the same letters', () => {
    expect(matchesHost(hostPattern('*.example.com'), 'badexample.com', 80)).toBe(false);
  });
});
