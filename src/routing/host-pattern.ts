import { canonicalHost, splitHostPort } from './authority.ts';

/**
 * Host patterns as written in `match.host` and `upstreams[].match`:
 * `api.example.com`, `*.example.com` (any sub-domain, not the bare domain), each with an
 * optional `:port`. Matching is case-insensitive and ignores a trailing dot.
 */
export interface HostPattern {
  /** Canonical (routing/authority.ts); for a wildcard, the suffix with its leading dot (`.example.com`). */
  readonly host: string;
  readonly wildcard: boolean;
  /** undefined = any port. */
  readonly port: number | undefined;
  /** As written, for messages. */
  readonly source: string;
}

/** Returns the pattern, or a message saying what is wrong with it. */
export function parseHostPattern(source: string): HostPattern | string {
  const parts = splitHostPort(source.trim());
  if (typeof parts === 'string') return `bad port in "${source}": ${parts}`;
  const { port } = parts;
  const wildcard = parts.host.startsWith('*.');
  const written = wildcard ? parts.host.slice(2) : parts.host;
  if (written === '' || written === '.' || written.includes('*') || /[\s/?#@]/.test(written)) {
    return `"${source}" is not a host, "*.suffix", or either with ":port"`;
  }
  // spelled as request authorities are, so `API.example.com.` matches `api.example.com`
  const host = wildcard ? `.${canonicalHost(written)}` : canonicalHost(written);
  return { host, wildcard, port, source };
}

/** `host` in canonical spelling (routing/authority.ts: a Target's `host`); `port` a number. */
export function matchesHost(pattern: HostPattern, host: string, port: number): boolean {
  if (pattern.port !== undefined && pattern.port !== port) return false;
  if (!pattern.wildcard) return host === pattern.host;
  return host.length > pattern.host.length && host.endsWith(pattern.host);
}
