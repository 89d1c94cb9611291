/**
 * The log lines of real exchanges (SPEC §9): valid JSON, one access line per request with the
 * fields operators rely on, retry decisions at debug, and never a credential or query string.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../src/app.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log.ts';
import { configText, removeTempDirs, startCli, writeConfig } from '../helpers/cli.ts';
import { viaProxy } from '../helpers/proxy.ts';
import { deadPort, reply, type Step, startUpstream, type Upstream } from '../helpers/upstream.ts';

const FAST = 'defaults:\n  route:\n    retry:\n      backoff: { base: 1ms, max: 5ms }\n';
const SECRETS = ['Bearer s3cr3t-bearer', 'sid=c00kie-value', 'Basic cHJveHk6cHc=', 'tok3n-secret'];
const SECRET_HEADERS = {
  authorization: 'Bearer s3cr3t-bearer',
  cookie: 'sid=c00kie-value',
  'proxy-authorization': 'Basic cHJveHk6cHc=',
};

let app: App | undefined;
let upstream: Upstream | undefined;
afterEach(async () => {
  await app?.stop();
  await upstream?.close();
  app = undefined;
  upstream = undefined;
  removeTempDirs();
});

/** The app with its raw log text captured exactly as pino writes it. */
async function startWithRawLog(level: string): Promise<{ app: App; raw: () => string }> {
  let raw = '';
  const logger = createLogger({ level, destination: { write: (line) => (raw += line) } });
  app = await startApp(loadConfigText(configText(FAST), 'test.yaml'), { logger });
  return { app, raw: () => raw };
}

function parseLines(raw: string): Record<string, unknown>[] {
  const lines = raw.split('\n').filter((line) => line !== '');
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** A retried request, a reprise-made answer and a refused one, each with every secret. */
async function sendSecrets(proxyPort: number): Promise<void> {
  upstream = await startUpstream([
    reply(503, '', { 'set-cookie': 'sid=c00kie-value' }),
    reply(200, 'ok', { 'set-cookie': 'sid=c00kie-value' }),
  ]);
  const headers = SECRET_HEADERS;
  const ok = await viaProxy(proxyPort, 'GET', `${upstream.origin}/a?token=tok3n-secret`, {
    headers,
  });
  expect(ok.status).toBe(200);
  const dead = `http://127.0.0.1:${await deadPort()}/b?token=tok3n-secret`;
  expect((await viaProxy(proxyPort, 'GET', dead, { headers })).status).toBe(502);
  const bad = await viaProxy(proxyPort, 'GET', '/c?token=tok3n-secret', { headers });
  expect(bad.status).toBe(400);
}

describe('log lines', () => {
  it('writes one access line per request with route, upstream, status, attempts and retries', async () => {
    const { app, raw } = await startWithRawLog('info');
    upstream = await startUpstream([reply(503), reply(200, 'ok')]);
    await viaProxy(app.proxyPort, 'GET', `${upstream.origin}/items/7`);
    const requests = parseLines(raw()).filter((line) => line.msg === 'request');
    expect(requests).toEqual([
      expect.objectContaining({
        level: 'info',
        route: 'default',
        upstream: upstream.authority,
        method: 'GET',
        path: '/items/7',
        status: 200,
        attempts: 2,
        retries: ['503'],
        durationMs: expect.any(Number),
      }),
    ]);
  });

  it('tells the retries of overlapping requests apart by requestId, route and upstream', async () => {
    const { app, raw } = await startWithRawLog('debug');
    // every first try fails, every retry succeeds, in whatever order the tries arrive
    const firstFails: Step = (req, res) => {
      res.writeHead(req.headers['x-reprise-attempt'] === '1' ? 503 : 200).end();
    };
    upstream = await startUpstream([firstFails]);
    const origin = upstream.origin;
    await Promise.all([
      viaProxy(app.proxyPort, 'GET', `${origin}/a`, { headers: { 'x-request-id': 'req-a' } }),
      viaProxy(app.proxyPort, 'GET', `${origin}/b`, { headers: { 'x-request-id': 'req-b' } }),
    ]);
    const retries = parseLines(raw()).filter((line) => line.msg === 'retry');
    const where = { route: 'default', upstream: upstream.authority, attempt: 1, reason: '503' };
    expect(retries).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ requestId: 'req-a', ...where }),
        expect.objectContaining({ requestId: 'req-b', ...where }),
      ]),
    );
    expect(retries).toHaveLength(2);
  });

  it('names the request of a suppressed retry at debug', async () => {
    const { app, raw } = await startWithRawLog('debug');
    upstream = await startUpstream([reply(503)]);
    await viaProxy(app.proxyPort, 'POST', `${upstream.origin}/`, {
      headers: { 'x-request-id': 'req-post' },
    });
    expect(parseLines(raw()).filter((line) => line.msg === 'retry suppressed')).toEqual([
      expect.objectContaining({
        requestId: 'req-post',
        route: 'default',
        upstream: upstream.authority,
        cause: 'method',
      }),
    ]);
  });

  it('logs each retry decision at debug, and none at info', async () => {
    const debug = await startWithRawLog('debug');
    upstream = await startUpstream([reply(503), reply(200, 'ok')]);
    await viaProxy(debug.app.proxyPort, 'GET', `${upstream.origin}/`);
    expect(parseLines(debug.raw()).filter((line) => line.msg === 'retry')).toEqual([
      expect.objectContaining({
        level: 'debug',
        route: 'default',
        upstream: upstream.authority,
        attempt: 1,
        reason: '503',
        delayMs: expect.any(Number),
      }),
    ]);
    await debug.app.stop();
    await upstream.close();

    const info = await startWithRawLog('info');
    upstream = await startUpstream([reply(503), reply(200, 'ok')]);
    await viaProxy(info.app.proxyPort, 'GET', `${upstream.origin}/`);
    expect(parseLines(info.raw()).filter((line) => line.msg === 'retry')).toEqual([]);
  });

  it('writes only valid JSON lines, with paths stripped of their query strings', async () => {
    const { app, raw } = await startWithRawLog('debug');
    await sendSecrets(app.proxyPort);
    const lines = parseLines(raw());
    const paths = lines.filter((line) => line.msg === 'request').map((line) => line.path);
    expect(paths).toEqual(['/a', '/b', '']);
  });

  it('never logs Authorization, cookies or query strings, even at debug', async () => {
    const { app, raw } = await startWithRawLog('debug');
    await sendSecrets(app.proxyPort);
    const text = raw();
    expect(parseLines(text).length).toBeGreaterThanOrEqual(5);
    for (const secret of SECRETS) expect(text).not.toContain(secret);
    expect(text).not.toContain('token=');
  });

  it('keeps secrets out of the CLI stdout as well', async () => {
    const cli = await startCli(writeConfig(FAST), { LOG_LEVEL: 'debug' });
    try {
      await sendSecrets(cli.proxyPort);
      await cli.waitForLog((line) => line.msg === 'request' && line.path === '');
    } finally {
      await cli.stop();
    }
    const stdout = cli.stdout();
    expect(stdout).toContain('"msg":"request"');
    for (const line of stdout.split('\n').filter(Boolean))
      expect(() => JSON.parse(line)).not.toThrow();
    for (const secret of SECRETS) expect(stdout).not.toContain(secret);
    expect(stdout).not.toContain('token=');
  });
});
