/**
 * How reprise connects to upstreams (undici's `connect` option): an exact connect timeout, the
 * deny list checked on what a name resolved to and on the address actually connected to, and
 * a reset (RST) made visible where undici would take it for the clean end of a close-delimited
 * body.
 */
import { type BlockList, connect, isIP } from 'node:net';
import type { buildConnector } from 'undici';
import { UPSTREAM_RESET_CODE } from '../../retry/failure.ts';
import { isDenied } from '../../routing/address-list.ts';
import { DeniedAddressError, guardedLookup } from './address-guard.ts';

class ConnectTimeout extends Error {
  // undici's code for it: classified as connect-failure (nothing was sent)
  readonly code = 'UND_ERR_CONNECT_TIMEOUT';

  constructor(timeoutMs: number) {
    super(`no connection within connectTimeout (${timeoutMs} ms)`);
  }
}

/**
 * The connector for every pool: a plain TCP connect with an exact connect timeout (undici's
 * own timer ticks in steps of about a second, so 150ms would wait a second), and the deny
 * list: a name's resolved addresses are filtered before connecting, an IP literal is checked
 * before connecting, and the socket's `remoteAddress` has the final word. reprise dispatches
 * `http:` origins only (HTTPS goes through CONNECT tunnels, never undici).
 */
export function guardedConnector(timeoutMs: number, denied: BlockList | undefined) {
  const lookup = denied === undefined ? undefined : guardedLookup(denied);
  return (options: buildConnector.Options, callback: buildConnector.Callback): void => {
    const { hostname } = options;
    if (denied !== undefined && isIP(hostname) !== 0 && isDenied(denied, hostname)) {
      callback(new DeniedAddressError(hostname), null);
      return;
    }
    const socket = connect({
      host: hostname,
      port: Number(options.port) || 80,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: 60_000,
      ...(lookup !== undefined && { lookup }),
    });
    socket.on('error', ignore);
    const timer = setTimeout(() => socket.destroy(new ConnectTimeout(timeoutMs)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      callback(err, null);
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      const address = socket.remoteAddress ?? '';
      if (denied !== undefined && isDenied(denied, address)) {
        socket.destroy();
        callback(new DeniedAddressError(address), null);
        return;
      }
      // before undici's own listener, which is attached in the callback
      socket.prependListener('error', exposeReset);
      callback(null, socket);
    });
  };
}

function ignore(): void {}

/**
 * undici takes a reset (`ECONNRESET`) during a close-delimited body (no Content-Length, not
 * chunked) for its clean end: it checks the code inside the socket's `error` event. Renamed
 * before undici sees it, the reset reaches the try as the error it is, so a cut body is never
 * relayed as a finished one.
 */
function exposeReset(err: NodeJS.ErrnoException): void {
  if (err.code === 'ECONNRESET') err.code = UPSTREAM_RESET_CODE;
}
