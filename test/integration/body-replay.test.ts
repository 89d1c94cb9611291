import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { FAST, startProxy, viaProxy } from '../helpers/proxy.ts';
import { echo, reply, startUpstream, truncate } from '../helpers/upstream.ts';

closeAfterEach();

describe('request body replay', () => {
  it('replays a random 512 KiB PUT byte for byte on every retry', async () => {
    const upstream = await startUpstream([reply(503), reply(503), reply(200, 'stored')]);
    const proxy = await startProxy(FAST);
    const body = randomBytes(512 * 1024);
    const res = await viaProxy(proxy.port, 'PUT', `${upstream.origin}/blob`, { body });
    expect(res.status).toBe(200);
    expect(upstream.seen).toHaveLength(3);
    for (const seen of upstream.seen) expect(seen.body.equals(body)).toBe(true);
  });

  it('replays a chunked upload', async () => {
    const upstream = await startUpstream([reply(503), echo()]);
    const proxy = await startProxy(FAST);
    const chunks = [randomBytes(1000), randomBytes(70_000), randomBytes(5)];
    const res = await viaProxy(proxy.port, 'PUT', `${upstream.origin}/`, { body: chunks });
    expect(res.status).toBe(200);
    expect(res.body.equals(Buffer.concat(chunks))).toBe(true);
    expect(upstream.seen[0]?.body.equals(Buffer.concat(chunks))).toBe(true);
  });

  it('forwards a body larger than the buffer whole, once, without retries', async () => {
    const upstream = await startUpstream([reply(503), reply(200)]);
    const proxy = await startProxy(FAST);
    const body = randomBytes(1.5 * 1024 * 1024);
    const res = await viaProxy(proxy.port, 'PUT', `${upstream.origin}/big`, { body });
    expect(res.status).toBe(503);
    expect(upstream.seen).toHaveLength(1);
    expect(upstream.seen[0]?.body.equals(body)).toBe(true);
    expect(proxy.requests()[0]).toMatchObject({ suppressed: 'body-too-large' });
  });

  it('forwards without retries when limits.maxBufferedBytes is reached', async () => {
    const upstream = await startUpstream([reply(503), reply(200)]);
    const proxy = await startProxy(`${FAST}limits:\n  maxBufferedBytes: 1KiB\n`);
    const body = randomBytes(4096);
    const res = await viaProxy(proxy.port, 'PUT', `${upstream.origin}/`, { body });
    expect(res.status).toBe(503);
    expect(upstream.seen[0]?.body.equals(body)).toBe(true);
    expect(proxy.requests()[0]).toMatchObject({ suppressed: 'buffer-full' });
  });

  it('releases every buffered byte once requests finish', async () => {
    const upstream = await startUpstream([reply(503), reply(200)]);
    const proxy = await startProxy(FAST);
    await Promise.all(
      Array.from({ length: 10 }, () =>
        viaProxy(proxy!.port, 'PUT', `${upstream!.origin}/`, { body: randomBytes(10_000) }),
      ),
    );
    const state = (await fetch(`http://127.0.0.1:${proxy.adminPort}/state`).then((r) =>
      r.json(),
    )) as {
      bufferedBytes: number;
    };
    expect(state.bufferedBytes).toBe(0);
  });
});

describe('response body', () => {
  it('aborts the client response promptly when the upstream dies after the headers', async () => {
    const upstream = await startUpstream([truncate(100_000, 1000), reply(200)]);
    const proxy = await startProxy(FAST);
    const started = Date.now();
    const res = await viaProxy(proxy.port, 'GET', `${upstream.origin}/`);
    expect(res.complete).toBe(false);
    expect(res.body.length).toBeLessThan(100_000);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(upstream.seen).toHaveLength(1);
  });

  it('streams a large response with backpressure intact', async () => {
    const big = randomBytes(8 * 1024 * 1024);
    const upstream = await startUpstream([reply(200, big)]);
    const proxy = await startProxy(FAST);
    const received = await new Promise<Buffer>((resolve, reject) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port: proxy!.port,
        path: `${upstream!.origin}/`,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.pause();
        // read slowly at first so the proxy must hold back the upstream
        setTimeout(() => {
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks)));
          res.resume();
        }, 200);
      });
      req.end();
    });
    expect(received.equals(big)).toBe(true);
  });
});
