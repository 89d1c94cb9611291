/**
 * Starts the real proxy in-process on ephemeral loopback ports, with its log lines captured
 * as parsed objects, and a plain node:http client that speaks to it as a forward proxy.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { type App, type AppOptions, startApp } from '../../src/app.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log.ts';
import { closeLater } from './close-after-each.ts';

/** Config with millisecond backoff, so retry tests do not wait; append route keys under it. */
export const FAST = `defaults:
  route:
    retry:
      backoff: { base: 1ms, max: 5ms }
`;

export interface TestProxy {
  readonly app: App;
  readonly port: number;
  readonly adminPort: number;
  readonly logs: Record<string, unknown>[];
  /** Access lines (`msg: 'request'`) only. */
  requests(): Record<string, unknown>[];
  close(): Promise<void>;
}

/** `yaml` is the config minus `version`, `listen` and `admin` (added here). */
export async function startProxy(
  yaml = '',
  options: { logLevel?: string } & Pick<
    AppOptions,
    'random' | 'now' | 'timers' | 'collectGarbage' | 'collectionTimers'
  > = {},
): Promise<TestProxy> {
  const text = `version: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\n${yaml}`;
  const config = loadConfigText(text, 'test.yaml');
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: options.logLevel ?? 'debug',
    destination: { write: (line: string) => logs.push(JSON.parse(line)) },
  });
  const { logLevel: _, ...appOptions } = options;
  const app = await startApp(config, { ...appOptions, logger });
  return {
    app,
    port: app.proxyPort,
    adminPort: app.adminPort,
    logs,
    requests: () => logs.filter((line) => line.msg === 'request'),
    close: closeLater(() => app.stop()),
  };
}

export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** True when the response ended cleanly; false when the connection broke mid-body. */
  readonly complete: boolean;
}

export interface SendOptions {
  readonly headers?: Record<string, string | string[]>;
  readonly body?: Buffer | string | Buffer[];
  /** Abort the request after this many ms. */
  readonly abortAfterMs?: number;
  /** Abort the request when this fires. */
  readonly signal?: AbortSignal;
}

/** Sends one request through the proxy in absolute form (as HTTP_PROXY clients do). */
export function viaProxy(
  proxyPort: number,
  method: string,
  url: string,
  options: SendOptions = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port: proxyPort,
      method,
      path: url,
      headers: options.headers,
      agent: false,
    });
    if (options.abortAfterMs !== undefined) setTimeout(() => req.destroy(), options.abortAfterMs);
    options.signal?.addEventListener('abort', () => req.destroy(), { once: true });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      const done = (complete: boolean) =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          complete,
        });
      res.on('end', () => done(true));
      res.on('aborted', () => done(false));
      res.on('error', () => done(false));
    });
    const body = options.body;
    if (Array.isArray(body)) {
      for (const chunk of body) req.write(chunk);
      req.end();
    } else {
      req.end(body);
    }
  });
}
