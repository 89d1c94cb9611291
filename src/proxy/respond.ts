/**
 * The one table of answers reprise makes itself (SPEC §5). Every 4xx/5xx that did not come
 * from an upstream is written here, with the same JSON body shape.
 */
import type { ServerResponse } from 'node:http';
import type { ErrorName } from '../vocabulary.ts';

/** Why a 403 `forbidden` when the address dialled is in `access.deniedUpstreams`, on every path. */
export const DENIED_UPSTREAM = 'the upstream address is in access.deniedUpstreams';

const ANSWERS: Readonly<Record<ErrorName, { status: number; message: string }>> = {
  'connect-failure': { status: 502, message: 'could not connect to the upstream' },
  reset: { status: 502, message: 'the upstream closed the connection before answering' },
  timeout: { status: 504, message: 'the upstream did not answer within perTryTimeout' },
  'body-cut': {
    status: 502,
    message: 'the upstream response body broke off or stalled before it was complete',
  },
  'upstream-certificate': {
    status: 502,
    message: 'the upstream TLS certificate failed verification',
  },
  deadline: { status: 504, message: 'the request timeout passed' },
  'circuit-open': { status: 503, message: 'the upstream circuit is open' },
  overflow: { status: 503, message: 'too many requests in flight to the upstream' },
  'bad-request': { status: 400, message: 'malformed request' },
  'headers-too-large': { status: 431, message: 'request headers too large' },
  'uri-too-long': { status: 414, message: 'request URI too long' },
  'request-timeout': { status: 408, message: 'the request head did not arrive in time' },
  'version-not-supported': { status: 505, message: 'only HTTP/1.0 and HTTP/1.1 are served' },
  forbidden: { status: 403, message: 'forbidden' },
  loop: { status: 508, message: 'the request came back to this proxy' },
  // a fault in reprise itself: never the client's doing, so never a 4xx
  internal: { status: 500, message: 'reprise failed on this request; the error is in its log' },
};

export function statusFor(name: ErrorName): number {
  return ANSWERS[name].status;
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  408: 'Request Timeout',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
  508: 'Loop Detected',
};

function bodyOf(name: ErrorName, message: string, attempts: number, upstream: string): string {
  return JSON.stringify({ error: name, message, attempts, upstream });
}

/**
 * The same answer as raw bytes, for a socket the HTTP parser gave up on; the connection
 * closes after it because the rest of the stream cannot be trusted.
 */
export function rawAnswer(name: ErrorName, message?: string): string {
  const { status, message: fallback } = ANSWERS[name];
  const body = bodyOf(name, message ?? fallback, 0, '');
  return (
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ''}\r\ncontent-type: application/json\r\n` +
    `x-reprise-error: ${name}\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

/**
 * A wait in milliseconds as a `Retry-After` value: whole seconds, rounded up so a client that
 * honours it does not come back early, and at least 1 (0 would invite an immediate retry).
 */
export function toRetryAfterSeconds(ms: number): number;
export function toRetryAfterSeconds(ms: number | undefined): number | undefined;
export function toRetryAfterSeconds(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.max(1, Math.ceil(ms / 1000));
}

export interface AnswerDetails {
  readonly attempts: number;
  readonly upstream: string;
  readonly message?: string;
  readonly retryAfterSeconds?: number;
  readonly viaToken?: string;
}

/** Writes a reprise-made answer; returns its status. Does nothing if the head went out already. */
export function answer(res: ServerResponse, name: ErrorName, details: AnswerDetails): number {
  const { status, message } = ANSWERS[name];
  if (res.headersSent) {
    res.destroy();
    return status;
  }
  const body = bodyOf(name, details.message ?? message, details.attempts, details.upstream);
  const headers: string[] = [
    'content-type',
    'application/json',
    'content-length',
    String(Buffer.byteLength(body)),
    'x-reprise-error',
    name,
    'x-reprise-attempts',
    String(details.attempts),
  ];
  if (details.viaToken !== undefined) headers.push('via', details.viaToken);
  if (details.retryAfterSeconds !== undefined) {
    headers.push('retry-after', String(details.retryAfterSeconds));
  }
  res.writeHead(status, headers);
  res.end(body);
  return status;
}
