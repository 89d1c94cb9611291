/**
 * Logging: the only pino user. JSON lines on stdout; one `request` line per finished request
 * (CONNECT tunnels and Upgrades too, when their connection ends) at info, retry decisions at debug (SPEC §9). Credentials and query strings never reach a line.
 */
import { pino } from 'pino';
import { LogWriter } from './log-writer.ts';
import type { RequestSummary } from './summary.ts';
import type { ClientHandshakeResult } from './vocabulary.ts';

export type Logger = pino.Logger;

/** Anything with `write(line)`: a stream, or a test sink. */
export interface LogDestination {
  write(line: string): void;
}

export interface LoggerOptions {
  /** A pino level name; default LOG_LEVEL, then `info`. */
  readonly level?: string | undefined;
  /** Default stdout. */
  readonly destination?: LogDestination | undefined;
}

const SECRET_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'];
const HEADER_HOLDERS = [
  'headers',
  'req.headers',
  'res.headers',
  'request.headers',
  'response.headers',
];
const REDACT_PATHS = HEADER_HOLDERS.flatMap((holder) =>
  SECRET_HEADERS.map((name) => `${holder}["${name}"]`),
);

/** Throws an Error naming the valid levels when `level` is not one (a user error, from LOG_LEVEL). */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? 'info';
  if (level !== 'silent' && !Object.hasOwn(pino.levels.values, level)) {
    const known = [...Object.keys(pino.levels.values), 'silent'].join(', ');
    throw new Error(`LOG_LEVEL: unknown level "${level}" (one of ${known})`);
  }
  const settings: pino.LoggerOptions = {
    level,
    base: { service: 'reprise' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  };
  return pino(settings, (options.destination ?? stdoutDestination()) as pino.DestinationStream);
}

const INFO = pino.levels.values.info as number;

/** The start of every line pino writes for this service (base and level formatter above). */
function lineStart(level: string, timeMs: number): string {
  return `{"level":"${level}","time":${timeMs},"service":"reprise"`;
}

const FLUSH_EVERY_MS = 200;
let stdout: LogWriter | undefined;

/** Stdout, written in batches (log-writer.ts): a line waits at most FLUSH_EVERY_MS. */
function stdoutDestination(): LogWriter {
  if (stdout === undefined) {
    // opening process.stdout makes a pipe non-blocking (libuv): a reader that stops then makes
    // the writer's writes fail with EAGAIN, where a blocking pipe would stall the event loop
    void process.stdout;
    const writer = new LogWriter({
      droppedLine: (dropped) =>
        `${lineStart('warn', Date.now())},"dropped":${dropped},"msg":"log lines dropped: stdout was not read"}\n`,
    });
    setInterval(() => writer.flush(), FLUSH_EVERY_MS).unref();
    stdout = writer;
  }
  return stdout;
}

/** Writes every buffered line now. Call before the process exits. */
export function flushLogs(): void {
  stdout?.drain();
}

/**
 * The one access line of a finished request, in the shape pino gives every line. It is the
 * only line written on every request, so it is written here field by field into one string
 * (no object, no generic serialiser: strings are quoted as they are unless they need JSON
 * escapes), and written to the logger's own destination so it keeps its place among the others.
 */
export function logRequestDone(logger: Logger, s: RequestSummary): void {
  if (logger.levelVal > INFO) return;
  // one shape for requests, refusals, CONNECT tunnels and Upgrades; undefined fields drop out.
  // Each string value sits between quotes that belong to the constant around it: every `+`
  // makes one more string to collect, and this line is made once per request
  let line = `${lineStart('info', Date.now())},"requestId":"${inQuotes(s.requestId)}"`;
  if (s.traceId !== undefined) line += `,"traceId":"${inQuotes(s.traceId)}"`;
  line += `,"client":"${inQuotes(s.client)}","route":"${inQuotes(s.route)}","upstream":"${inQuotes(s.upstream)}"`;
  if (s.upstreamAddress !== undefined) {
    line += `,"upstreamAddress":"${inQuotes(s.upstreamAddress)}"`;
  }
  // only where it is so: most lines are plain HTTP, and they stay as they were
  if (s.tls) line += ',"tls":true';
  if (s.tunnel !== undefined) line += `,"tunnel":"${inQuotes(s.tunnel)}"`;
  line += `,"method":"${inQuotes(s.method)}","path":"${inQuotes(stripQuery(s.path))}","status":${number(s.status)},"attempts":${number(s.attempts)},"retries":${quotedList(s.retryReasons)}`;
  if (s.suppressed !== undefined) line += `,"suppressed":"${inQuotes(s.suppressed)}"`;
  // which try won, where hedges raced it
  if (s.hedges.length > 0) {
    if (s.wonAttempt !== undefined) line += `,"won":${number(s.wonAttempt)}`;
    line += `,"hedges":${quotedList(s.hedges)}`;
  }
  if (s.fallback !== undefined) line += `,"fallback":"${inQuotes(s.fallback)}"`;
  if (s.error !== undefined) line += `,"error":"${inQuotes(s.error)}"`;
  if (s.reason !== undefined) line += `,"reason":"${inQuotes(s.reason)}"`;
  line += `,"bytesIn":${number(s.bytesIn)},"bytesOut":${number(s.bytesOut)},"durationMs":${number(s.durationMs)},"msg":"request"}\n`;
  const destination = (logger as unknown as Record<symbol, LogDestination>)[
    pino.symbols.streamSym
  ] as LogDestination;
  destination.write(line);
}

/** `value` as it goes between a JSON string's quotes; itself unless a character needs escaping. */
function inQuotes(value: string): string {
  return needsEscape(value) ? JSON.stringify(value).slice(1, -1) : value;
}

/** Whether JSON must escape a character of `value`: quote, backslash, control, lone surrogate. */
function needsEscape(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return true;
  }
  return false;
}

function quotedList(values: readonly string[]): string {
  if (values.length === 0) return '[]';
  let list = '["';
  for (let i = 0; i < values.length; i++) {
    list += (i === 0 ? '' : '","') + inQuotes(values[i] as string);
  }
  return `${list}"]`;
}

/** As JSON.stringify writes a number (null for NaN and the infinities). */
function number(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null';
}

export interface RetryLine {
  /** The access line's `requestId`: overlapping requests' retries are told apart by it. */
  readonly requestId: string;
  readonly route: string;
  readonly upstream: string;
  /** The try that just ended, 1-based. */
  readonly attempt: number;
  /** A failure name or a status code (`503`). */
  readonly reason: string;
  readonly delayMs: number;
}

export function logRetry(logger: Logger, line: RetryLine): void {
  logger.debug(line, 'retry');
}

export interface SuppressedLine {
  readonly requestId: string;
  readonly route: string;
  readonly upstream: string;
  readonly attempt: number;
  readonly cause: string;
}

export function logSuppressed(logger: Logger, line: SuppressedLine): void {
  logger.debug(line, 'retry suppressed');
}

export interface HandshakeFailedLine {
  /** `host:port` dialled. */
  readonly upstream: string;
  /** The name the certificate was checked against. */
  readonly servername: string;
  readonly failure: string;
  /** The TLS error code (CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID, …). */
  readonly reason: string | undefined;
  readonly message: string;
}

/** A TLS handshake to an upstream failed: why, since the access line has only the failure name. */
export function logHandshakeFailed(logger: Logger, line: HandshakeFailedLine): void {
  logger.warn(line, 'upstream tls handshake failed');
}

export interface ClientHandshakeLine {
  /** The CONNECT's host:port. */
  readonly upstream: string;
  readonly result: ClientHandshakeResult;
  /** The SNI the client sent, if any. */
  readonly sni: string | undefined;
}

const CLIENT_HANDSHAKE_MESSAGES: Partial<Record<ClientHandshakeResult, string>> = {
  'sni-mismatch': 'client tls refused: its SNI names another host than its CONNECT',
  rejected:
    'client rejected the intercepting certificate: it pins its certificates or does not trust writeCa',
  'h2-only': 'client offers only h2: tunnel passed through, not intercepted',
};

/** An intercepted tunnel's handshake with its client; only the ones an operator acts on warn. */
export function logClientHandshake(logger: Logger, line: ClientHandshakeLine): void {
  const message = CLIENT_HANDSHAKE_MESSAGES[line.result];
  if (line.result === 'sni-mismatch' || line.result === 'rejected') logger.warn(line, message);
  else if (message !== undefined) logger.info(line, message);
  else if (line.result !== 'ok') logger.debug(line, 'client tls handshake did not finish');
}

/** `source` undefined: the embedded defaults. */
export function logConfigLoaded(logger: Logger, source: string | undefined): void {
  logger.info({ source: source ?? 'embedded defaults' }, 'config loaded');
}

/** `lines` as ConfigError.format() gives them: `FILE:LINE:COL: key.path: message`. */
export function logConfigError(logger: Logger, lines: readonly string[]): void {
  logger.error({ errors: lines }, 'config rejected');
}

/** The summary holds a path only; this is the last guard (SPEC §9: no query strings). */
function stripQuery(path: string): string {
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}
