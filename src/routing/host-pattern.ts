/**
 * Host patterns as written in `match.host` and `upstreams[].match`:
 * `api.example.com`, `*.example.com` (any sub-domain, not the bare domain), each with an
 * optional `:port`. Matching is case-insensitive.
 */
export interface HostPattern {
  /** Lower-case; for a wildcard, the suffix with its leading dot (`.example.com`). */
  readonly host: string;
  readonly wildcard: boolean;
  /** undefined = any port. */
  readonly port: number | undefined;
  /** As written, for messages. */
  readonly source: string;
}

/** Returns the pattern, or a message saying what is wrong with it. */
export function parseHostPattern(source: string): HostPattern | string {
  let host = source.trim().toLowerCase();
  let port: number | undefined;
  const colon = host.lastIndexOf(':');
  if (colon !== -1 && !host.endsWith(']')) {
    const digits = host.slice(colon + 1);
    if (!/^\d{1,5}$/.test(digits) || Number(digits) > 65535) return `bad port in "${source}"`;
    port = Number(digits);
    host = host.slice(0, colon);
  }
  const wildcard = host.startsWith('*.');
  if (wildcard) host = host.slice(1);
  if (host === '' || host === '.' || host.includes('*') || /[\s/?#@]/.test(host)) {
    return `"${source}" is not a host, "*.suffix", or either with ":port"`;
  }
  return { host, wildcard, port, source };
}

/** `host` must already be lower-case, without brackets' port. */
export function matchesHost(pattern: HostPattern, host: string, port: number): boolean {
  if (pattern.port !== undefined && pattern.port !== port) return false;
  if (!pattern.wildcard) return host === pattern.host;
  return host.length > pattern.host.length && host.endsWith(pattern.host);
}
