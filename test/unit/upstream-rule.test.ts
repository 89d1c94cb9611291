import { describe, expect, it } from 'vitest';
import { explainRequest } from '../../src/cli/explain.ts';
import { loadConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { listenerTarget, parseAbsoluteTarget } from '../../src/routing/target.ts';
import { PUBLIC_ROOTS, tlsPort, viewRuleTls } from '../../src/routing/upstream-rule.ts';

function load(yaml: string): Config {
  return loadConfigText(`version: 1\n${yaml}`, 'c.yaml');
}

const config = load(`upstreams:
  - match: "*.svc.cluster.local"
    budget: { ratio: 0.1 }
  - match: api.partner.example
    tls: {}
  - match: alt.partner.example
    tls: { port: 8443, servername: edge.partner.example }
  - match: plain.partner.example:443
`);
const rules = config.upstreams;

describe('which TLS applies (routing/upstream-rule.ts)', () => {
  it('sends an http:// call to an upstream with tls as https://, port 80 becoming 443', () => {
    const target = parseAbsoluteTarget('http://API.partner.example/v1?x=1', rules);
    expect(target).toMatchObject({
      origin: 'https://api.partner.example:443',
      hostHeader: 'api.partner.example:443',
      authority: 'api.partner.example:80',
      port: 80,
      path: '/v1?x=1',
      pathname: '/v1',
    });
    expect(target?.tls).toBe(rules[1]?.tls);
  });

  it('keeps a port other than 80 for an http:// call, unless the rule names one', () => {
    expect(parseAbsoluteTarget('http://api.partner.example:9000/', rules)?.origin).toBe(
      'https://api.partner.example:9000',
    );
    expect(parseAbsoluteTarget('http://alt.partner.example/', rules)?.origin).toBe(
      'https://alt.partner.example:8443',
    );
  });

  it('leaves an http:// call to an upstream without tls plain', () => {
    const target = parseAbsoluteTarget('http://orders.svc.cluster.local/', rules);
    expect(target).toMatchObject({ origin: 'http://orders.svc.cluster.local:80', tls: undefined });
  });

  it('sends an absolute-form https:// request with the public roots when no rule has tls', () => {
    const target = parseAbsoluteTarget('https://example.com/a', rules);
    expect(target).toMatchObject({
      origin: 'https://example.com:443',
      authority: 'example.com:443',
      hostHeader: 'example.com:443',
      tls: PUBLIC_ROOTS,
    });
  });

  it("uses the rule's tls for an https:// request, on the URL's own port", () => {
    const target = parseAbsoluteTarget('https://alt.partner.example:9443/', rules);
    expect(target?.origin).toBe('https://alt.partner.example:9443');
    expect(target?.tls?.servername).toBe('edge.partner.example');
  });

  it('takes the first matching rule, as the budget and breaker settings do', () => {
    // plain.partner.example:443 has no tls: an https:// URL still gets the public roots
    expect(parseAbsoluteTarget('https://plain.partner.example/', rules)?.tls).toBe(PUBLIC_ROOTS);
    expect(tlsPort(PUBLIC_ROOTS, 443, true)).toBe(443);
  });

  it('rejects other schemes and malformed https:// authorities', () => {
    expect(parseAbsoluteTarget('ftp://example.com/', rules)).toBeUndefined();
    expect(parseAbsoluteTarget('https://', rules)).toBeUndefined();
    expect(parseAbsoluteTarget('https://user@example.com/', rules)).toBeUndefined();
  });

  it('targets an https:// listener with its compiled origin, keyed by its authority', () => {
    const withListener = load(
      'listeners:\n  - { listen: 127.0.0.1:0, upstream: "https://api.partner.example:8443" }\n',
    );
    const listener = withListener.listeners[0];
    if (listener === undefined) throw new Error('no listener');
    expect(listenerTarget(listener, '/v1')).toMatchObject({
      origin: 'https://api.partner.example:8443',
      authority: 'api.partner.example:8443',
      tls: PUBLIC_ROOTS,
      path: '/v1',
    });
  });
});

describe('what explain and /state show', () => {
  it('shows the TLS of an upstream for /state: port, servername, CA, client certificate', () => {
    expect(viewRuleTls(rules, 'alt.partner.example:80')).toEqual({
      port: 8443,
      servername: 'edge.partner.example',
      ca: 'public roots',
      cert: 'none',
    });
    expect(viewRuleTls(rules, 'orders.svc.cluster.local:80')).toBeUndefined();
  });

  it('prints the connection a request is sent on', () => {
    const tls = explainRequest(config, undefined, 'GET', 'http://api.partner.example/', {});
    expect(tls).toContain(
      'connection: TLS on port 443, servername api.partner.example, ca public roots, client certificate none',
    );
    const plain = explainRequest(config, undefined, 'GET', 'http://orders.svc.cluster.local/', {});
    expect(plain).toContain('connection: plain HTTP');
  });

  it('explains an https:// URL as a tunnel, and as an absolute-form request over TLS', () => {
    const out = explainRequest(config, undefined, 'GET', 'https://example.com/', {});
    expect(out).toContain(
      'route: none: https:// goes through a CONNECT tunnel (HTTPS_PROXY); routes do not apply',
    );
    expect(out).toContain('sent in absolute form instead (GET https://… on the proxy port):');
    expect(out).toContain(
      'connection: TLS on port 443, servername example.com, ca public roots, client certificate none',
    );
  });
});
