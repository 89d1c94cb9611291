/**
 * The route table: the first route whose `match` fits the request wins, in file order;
 * none => `defaults.route` (SPEC §2 `routes`).
 */
import type { Config, RouteMatch, RoutePolicy } from '../config/types.ts';
import { matchesHost } from './host-pattern.ts';

/**
 * The policy for a request to `host:port` + `path`.
 * `host` as in `URL.hostname` (IPv6 in brackets), any case; `port` the effective port
 * (80 when the URL leaves it out); `path` without the query (a `?…` tail is ignored);
 * `method` as sent (upper-case; route methods are compiled upper-case).
 * Pure; allocates nothing unless the host has upper-case letters or the path a query.
 */
export function matchRoute(
  config: Config,
  host: string,
  port: number,
  path: string,
  method: string,
): RoutePolicy {
  const lowerHost = host.toLowerCase();
  const query = path.indexOf('?');
  const bare = query === -1 ? path : path.slice(0, query);
  for (const route of config.routes) {
    if (isMatch(route.match, lowerHost, port, bare, method)) return route;
  }
  return config.defaultRoute;
}

function isMatch(
  match: RouteMatch,
  host: string,
  port: number,
  path: string,
  method: string,
): boolean {
  if (match.host !== undefined && !matchesHost(match.host, host, port)) return false;
  if (match.methods !== undefined && !match.methods.has(method)) return false;
  if (match.pathPrefix !== undefined && !path.startsWith(match.pathPrefix)) return false;
  // compiled without the g/y flags, so test() keeps no state between requests
  if (match.pathRegex !== undefined && !match.pathRegex.test(path)) return false;
  return true;
}
