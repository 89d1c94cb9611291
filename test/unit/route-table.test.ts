import { describe, expect, it } from 'vitest';
import { matchRoute } from '../../src/routing/route-table.ts';
import { makeConfig, makeRoute, makeRoutePolicy } from '../helpers/policy-factory.ts';

const defaultRoute = makeRoutePolicy({ name: 'default' });

describe('matchRoute', () => {
  it('returns the default route when no route matches', () => {
    const config = makeConfig({
      defaultRoute,
      routes: [makeRoute({ host: 'api.example.com' }, { name: 'api' })],
    });
    expect(matchRoute(config, 'www.example.com', 80, '/', 'GET')).toBe(defaultRoute);
  });

  it('returns the first matching route in file order', () => {
    const config = makeConfig({
      routes: [
        makeRoute({ host: 'api.example.com', path: '/v1/' }, { name: 'v1' }),
        makeRoute({ host: 'api.example.com' }, { name: 'api' }),
        makeRoute({ host: 'api.example.com', path: '/v1/items' }, { name: 'unreachable' }),
      ],
    });
    expect(matchRoute(config, 'api.example.com', 80, '/v1/items', 'GET').name).toBe('v1');
    expect(matchRoute(config, 'api.example.com', 80, '/v2/items', 'GET').name).toBe('api');
  });

  it('matches the host case-insensitively', () => {
    const config = makeConfig({
      routes: [makeRoute({ host: 'api.example.com' }, { name: 'api' })],
    });
    expect(matchRoute(config, 'API.Example.COM', 80, '/', 'GET').name).toBe('api');
  });

  it('matches a wildcard host pattern', () => {
    const config = makeConfig({
      routes: [makeRoute({ host: '*.svc.cluster.local' }, { name: 'svc' })],
    });
    expect(matchRoute(config, 'payments.default.svc.cluster.local', 8080, '/', 'GET').name).toBe(
      'svc',
    );
  });

  it('honours the port of the host pattern', () => {
    const config = makeConfig({
      routes: [makeRoute({ host: 'api.example.com:8080' }, { name: 'api' })],
    });
    expect(matchRoute(config, 'api.example.com', 8080, '/', 'GET').name).toBe('api');
    expect(matchRoute(config, 'api.example.com', 80, '/', 'GET').name).toBe('default');
  });

  it('matches the path as a prefix', () => {
    const config = makeConfig({ routes: [makeRoute({ path: '/v1/' }, { name: 'v1' })] });
    expect(matchRoute(config, 'a.example', 80, '/v1/items', 'GET').name).toBe('v1');
    expect(matchRoute(config, 'a.example', 80, '/v10/items', 'GET').name).toBe('default');
  });

  it('matches the path against pathRegex', () => {
    const config = makeConfig({
      routes: [makeRoute({ pathRegex: /^\/v1\/items\/\d+$/ }, { name: 'item' })],
    });
    expect(matchRoute(config, 'a.example', 80, '/v1/items/42', 'GET').name).toBe('item');
    expect(matchRoute(config, 'a.example', 80, '/v1/items/abc', 'GET').name).toBe('default');
  });

  it('ignores the query string when matching the path', () => {
    const config = makeConfig({
      routes: [makeRoute({ pathRegex: /^\/v1\/items\/\d+$/ }, { name: 'item' })],
    });
    expect(matchRoute(config, 'a.example', 80, '/v1/items/42?x=1', 'GET').name).toBe('item');
  });

  it('matches only the listed methods when the route lists some', () => {
    const config = makeConfig({ routes: [makeRoute({ methods: ['GET'] }, { name: 'reads' })] });
    expect(matchRoute(config, 'a.example', 80, '/', 'GET').name).toBe('reads');
    expect(matchRoute(config, 'a.example', 80, '/', 'POST').name).toBe('default');
  });

  it('requires every condition of a match to hold', () => {
    const config = makeConfig({
      routes: [
        makeRoute({ host: 'api.example.com', path: '/v1/', methods: ['GET'] }, { name: 'all' }),
      ],
    });
    expect(matchRoute(config, 'api.example.com', 80, '/v1/x', 'GET').name).toBe('all');
    expect(matchRoute(config, 'other.example.com', 80, '/v1/x', 'GET').name).toBe('default');
    expect(matchRoute(config, 'api.example.com', 80, '/v2/x', 'GET').name).toBe('default');
    expect(matchRoute(config, 'api.example.com', 80, '/v1/x', 'PUT').name).toBe('default');
  });

  it('matches a route with an empty match for every request', () => {
    const config = makeConfig({ routes: [makeRoute({}, { name: 'catch-all' })] });
    expect(matchRoute(config, 'anything.example', 1234, '/whatever', 'PATCH').name).toBe(
      'catch-all',
    );
  });
});
