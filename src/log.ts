/**
 * Logging: the only pino user. JSON lines on stdout; one `request` line per finished request
 * (CONNECT tunnels and Upgrades too, when their connection ends) at info, retry decisions at debug (SPEC §9). Credentials and query strings never reach a line.
 */
import { pino } from 'pino';
import { JsonLine } from './json-line.ts';
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

/** What follows the time on every line pino writes for this service (base above). */
const AFTER_TIME = ',"service":"reprise"';

/** What comes before the time on a line pino writes at `level` (level formatter above). */
const beforeTime = (level: string) => `{"level":"${level}","time":`;
const INFO_BEFORE_TIME = beforeTime('info');

/** The start of every line pino writes for this service (base and level formatter above). */
function lineStart(level: string, timeMs: number): string {
  return `${beforeTime(level)}${timeMs}${AFTER_TIME}`;
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

/** The access line being made; one is enough, a line is made and written in one go. */
const accessLine = new JsonLine();

/**
 * The one access line of a finished request, in the shape pino gives every line. It is the
 * only line written on every request, so it is made here field by field, as bytes
 * (json-line.ts: no object, no generic serialiser, no string of the whole line), and written
 * to the logger's own destination so it keeps its place among the others.
 */
export function logRequestDone(logger: Logger, s: RequestSummary): void {
  if (logger.levelVal > INFO) return;
  // one shape for requests, refusals, CONNECT tunnels and Upgrades; undefined fields drop out
  const line = accessLine.reset();
  line.raw(INFO_BEFORE_TIME).number(Date.now()).raw(AFTER_TIME);
  line.raw(',"requestId":').string(s.requestId);
  if (s.traceId !== undefined) line.raw(',"traceId":').string(s.traceId);
  line.raw(',"client":').string(s.client);
  line.raw(',"route":').string(s.route);
  line.raw(',"upstream":').string(s.upstream);
  if (s.upstreamAddress !== undefined) line.raw(',"upstreamAddress":').string(s.upstreamAddress);
  // only where it is so: most lines are plain HTTP, and they stay as they were
  if (s.tls) line.raw(',"tls":true');
  if (s.tunnel !== undefined) line.raw(',"tunnel":').string(s.tunnel);
  line.raw(',"method":').string(s.method);
  line.raw(',"path":').string(stripQuery(s.path));
  line.raw(',"status":').number(s.status);
  line.raw(',"attempts":').number(s.attempts);
  stringList(line.raw(',"retries":'), s.retryReasons);
  if (s.suppressed !== undefined) line.raw(',"suppressed":').string(s.suppressed);
  // which try won, where hedges raced it
  if (s.hedges.length > 0) {
    if (s.wonAttempt !== undefined) line.raw(',"won":').number(s.wonAttempt);
    stringList(line.raw(',"hedges":'), s.hedges);
  }
  if (s.fallback !== undefined) line.raw(',"fallback":').string(s.fallback);
  if (s.error !== undefined) line.raw(',"error":').string(s.error);
  if (s.reason !== undefined) line.raw(',"reason":').string(s.reason);
  line.raw(',"bytesIn":').number(s.bytesIn);
  line.raw(',"bytesOut":').number(s.bytesOut);
  line.raw(',"durationMs":').number(s.durationMs);
  line.raw(',"msg":"request"}\n');
  const destination = (logger as unknown as Record<symbol, LogDestination>)[
    pino.symbols.streamSym
  ] as LogDestination;
  if (destination instanceof LogWriter) destination.writeLine(line);
  else destination.write(line.toString());
}

function stringList(line: JsonLine, values: readonly string[]): void {
  line.raw('[');
  for (let i = 0; i < values.length; i++) {
    if (i > 0) line.raw(',');
    line.string(values[i] as string);
  }
  line.raw(']');
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
