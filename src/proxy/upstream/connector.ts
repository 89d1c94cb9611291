/**
 * The dialer (dialer.ts) as undici's `connect` option, and a reset (RST) made visible where
 * undici would take it for the clean end of a close-delimited body.
 */
import type { buildConnector } from 'undici';
import type { UpstreamTls } from '../../config/types.ts';
import { UPSTREAM_RESET_CODE } from '../../retry/failure.ts';
import type { Dialer } from './dialer.ts';

/**
 * The connector of one undici Agent: every pooled connection is dialled by `dialer`, with TLS
 * when `tls` is given (undici then dispatches `https:` origins here, never to its own TLS).
 */
export function dialerConnector(
  dialer: Dialer,
  connectTimeoutMs: number,
  tls: UpstreamTls | undefined,
): buildConnector.connector {
  return (options, callback) => {
    const port = Number(options.port) || (options.protocol === 'https:' ? 443 : 80);
    dialer.dial({ host: options.hostname, port, connectTimeoutMs, tls }).result.then((dialed) => {
      if (dialed.kind === 'failed') {
        callback(dialed.error, null);
        return;
      }
      // before undici's own listener, which is attached in the callback
      dialed.socket.prependListener('error', exposeReset);
      callback(null, dialed.socket);
    });
  };
}

/**
 * undici takes a reset (`ECONNRESET`) during a close-delimited body (no Content-Length, not
 * chunked) for its clean end: it checks the code inside the socket's `error` event. Renamed
 * before undici sees it, the reset reaches the try as the error it is, so a cut body is never
 * relayed as a finished one.
 */
function exposeReset(err: NodeJS.ErrnoException): void {
  if (err.code === 'ECONNRESET') err.code = UPSTREAM_RESET_CODE;
}
