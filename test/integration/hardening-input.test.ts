/**
 * Bad input from clients (issue 8). Each malformed request gets a 4xx or a close, the
 * upstream receives nothing, the next valid request works, and nothing is thrown. Node's
 * parser rejects many of these and request-guard.ts the rest: the tests prove the outcome
 * whichever layer rejects. Raw sockets send the exact bytes.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import { RawClient, type RawRead, type RawResponse } from '../helpers/raw-client.ts';
import {
  delayed,
  echo,
  reply,
  type Step,
  startUpstream,
  type Upstream,
} from '../helpers/upstream.ts';

const uncaught = vi.fn();
beforeAll(() => {
  process.on('uncaughtException', uncaught);
  process.on('unhandledRejection', uncaught);
});
afterAll(() => {
  process.off('uncaughtException', uncaught);
  process.off('unhandledRejection', uncaught);
});

let proxy: TestProxy | undefined;
let upstream: Upstream | undefined;
afterEach(async () => {
  expect(uncaught).not.toHaveBeenCalled();
  expect(proxy?.logs.filter((line) => line.msg === 'unexpected error') ?? []).toEqual([]);
  await proxy?.close();
  await upstream?.close();
  proxy = undefined;
  upstream = undefined;
});

const LIMITS = `limits:
  maxHeaderBytes: 4KiB
  maxUrlBytes: 1KiB
`;

async function setup(yaml = LIMITS, script: Step[] = [echo()]) {
  upstream = await startUpstream(script);
  proxy = await startProxy(yaml, { logLevel: 'info' });
  return { up: upstream, px: proxy, u: upstream.origin };
}

function asResponse(read: RawRead): RawResponse {
  if (read.kind !== 'response') throw new Error(`expected a response, the connection closed`);
  return read;
}

async function send(port: number, bytes: string): Promise<{ client: RawClient; first: RawRead }> {
  const client = await RawClient.connect(port);
  client.write(Buffer.from(bytes, 'latin1'));
  return { client, first: await client.read() };
}

/** A valid request works afterwards, on `client` if given (the connection stayed open). */
async function expectNextRequestWorks(up: Upstream, port: number, client?: RawClient) {
  const before = up.seen.length;
  const next = client ?? (await RawClient.connect(port));
  next.write(`GET ${up.origin}/next HTTP/1.1\r\nHost: ${up.authority}\r\n\r\n`);
  expect(asResponse(await next.read()).status).toBe(200);
  expect(up.seen.slice(before).map((s) => s.url)).toEqual(['/next']);
  next.destroy();
}

/** [behaviour, request bytes (u = the upstream's origin), status reprise answers] */
const REFUSED: readonly [string, (u: string) => string, number][] = [
  [
    'Content-Length with Transfer-Encoding',
    (u) =>
      `POST ${u}/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET ${u}/smuggled HTTP/1.1\r\n\r\n`,
    400,
  ],
  [
    'Transfer-Encoding before Content-Length',
    (u) =>
      `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'two equal Content-Length headers',
    (u) => `POST ${u}/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello`,
    400,
  ],
  [
    'two different Content-Length headers',
    (u) => `POST ${u}/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
    400,
  ],
  [
    'a Content-Length list',
    (u) => `POST ${u}/ HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello!`,
    400,
  ],
  [
    'Transfer-Encoding: xchunked',
    (u) => `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'Transfer-Encoding: chunked, identity',
    (u) =>
      `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'Transfer-Encoding: gzip, chunked',
    (u) => `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'two Transfer-Encoding headers',
    (u) =>
      `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'a space before the colon of Transfer-Encoding',
    (u) => `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'a leading space on the Transfer-Encoding line',
    (u) =>
      `POST ${u}/ HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    '" chunked" with a Content-Length',
    (u) =>
      `POST ${u}/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding:  chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'a tab before chunked with a Content-Length',
    (u) =>
      `POST ${u}/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'a vertical tab before chunked',
    (u) => `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding:\x0bchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  ['a bare LF ending the request line', (u) => `GET ${u}/ HTTP/1.1\nHost: a\n\n`, 400],
  ['a bare LF between header lines', (u) => `GET ${u}/ HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n`, 400],
  ['a bare CR between header lines', (u) => `GET ${u}/ HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n`, 400],
  ['obs-fold', (u) => `GET ${u}/ HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n`, 400],
  ['NUL in a header value', (u) => `GET ${u}/ HTTP/1.1\r\nX-A: a\x00b\r\n\r\n`, 400],
  ['a control byte in a header value', (u) => `GET ${u}/ HTTP/1.1\r\nX-A: a\x01b\r\n\r\n`, 400],
  ['DEL in a header value', (u) => `GET ${u}/ HTTP/1.1\r\nX-A: a\x7fb\r\n\r\n`, 400],
  ['NUL in a header name', (u) => `GET ${u}/ HTTP/1.1\r\nX\x00A: b\r\n\r\n`, 400],
  ['NUL in the target', (u) => `GET ${u}/a\x00b HTTP/1.1\r\n\r\n`, 400],
  [
    'a chunk size that is not hex',
    (u) => `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'a chunk size past 64 bits',
    (u) =>
      `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'a negative chunk size',
    (u) => `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'a 0x chunk size',
    (u) => `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'a chunk longer than its size',
    (u) => `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'a bare LF in a chunk extension',
    (u) => `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'a control byte in a chunk extension',
    (u) =>
      `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\x01\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  ['two Host headers', (u) => `GET ${u}/ HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n`, 400],
  ['an HTTP/0.9-style request line', (u) => `GET ${u}/\r\n\r\n`, 505],
  [
    'Transfer-Encoding on HTTP/1.0',
    (u) => `POST ${u}/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'headers over maxHeaderBytes',
    (u) => `GET ${u}/ HTTP/1.1\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`,
    431,
  ],
  ['a target over maxUrlBytes', (u) => `GET ${u}/${'a'.repeat(2000)} HTTP/1.1\r\n\r\n`, 414],
  ['a target over maxHeaderBytes', (u) => `GET ${u}/${'a'.repeat(20_000)} HTTP/1.1\r\n\r\n`, 414],
  ['an unknown method', (u) => `FOO ${u}/ HTTP/1.1\r\n\r\n`, 400],
  ['a lower-case method', (u) => `get ${u}/ HTTP/1.1\r\n\r\n`, 400],
  ['a method with a separator', (u) => `G(T ${u}/ HTTP/1.1\r\n\r\n`, 400],
  ['HTTP/1.2', (u) => `GET ${u}/ HTTP/1.2\r\n\r\n`, 505],
  ['HTTP/2.0 in an HTTP/1 request line', (u) => `GET ${u}/ HTTP/2.0\r\n\r\n`, 505],
  ['HTTP/3.0', (u) => `GET ${u}/ HTTP/3.0\r\n\r\n`, 505],
  ['the HTTP/2 preface', () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 505],
  ['a malformed protocol name', (u) => `GET ${u}/ HTTX/1.1\r\n\r\n`, 400],
  ['TRACE with Max-Forwards: 0', (u) => `TRACE ${u}/ HTTP/1.1\r\nMax-Forwards: 0\r\n\r\n`, 400],
  [
    'OPTIONS with a malformed Max-Forwards',
    (u) => `OPTIONS ${u}/ HTTP/1.1\r\nMax-Forwards: -1\r\n\r\n`,
    400,
  ],
];

describe('malformed requests: a 4xx and a close, nothing upstream, the next request works', () => {
  it.each(REFUSED)('refuses %s', async (_name, bytes, status) => {
    const { up, px, u } = await setup();
    const { client, first } = await send(px.port, bytes(u));
    const res = asResponse(first);
    expect(res.status).toBe(status);
    expect(res.headers['x-reprise-error']).toBeDefined();
    expect(await client.waitClosed()).toBe(true);
    expect(up.seen).toHaveLength(0);
    await expectNextRequestWorks(up, px.port);
  });
});

describe('a body that breaks mid-way', () => {
  it('closes a client that keeps its side open after a bad chunk, ending its upstream try', async () => {
    const { up, px, u } = await setup();
    const client = await RawClient.connect(px.port, 3_000, true);
    client.write(`PUT ${u}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    client.write('zz\r\n');
    expect(asResponse(await client.read())).toMatchObject({ status: 400 });
    // the exchange ends as client-gone, not left waiting for the rest of the body
    await vi.waitFor(() => expect(px.requests()).toHaveLength(1), { timeout: 2_500 });
    expect(px.requests()[0]).toMatchObject({ status: 0, suppressed: 'client-gone' });
    expect(up.seen).toHaveLength(0);
    client.destroy();
    await expectNextRequestWorks(up, px.port);
  });

  it('closes without an answer when the bad chunk comes after the response began', async () => {
    const early = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
    });
    early.listen(0, '127.0.0.1');
    await once(early, 'listening');
    try {
      const { px } = await setup();
      const target = `http://127.0.0.1:${(early.address() as AddressInfo).port}`;
      const client = await RawClient.connect(px.port);
      // no retry may follow, so the answer is not held: it streams as it comes
      client.write(
        `PUT ${target}/ HTTP/1.1\r\nx-reprise-retry: off\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`,
      );
      await vi.waitFor(() => expect(client.received).toContain('partial'), { timeout: 2_000 });
      client.write('zz\r\n');
      const end = await client.read();
      expect(end.kind).toBe('closed');
      expect(client.received).not.toContain('400');
    } finally {
      early.closeAllConnections();
      early.close();
    }
  });
});

describe('every header is checked', () => {
  it('refuses a second Host header that comes after 2,000 others', async () => {
    const { up, px, u } = await setup('limits:\n  maxHeaderBytes: 1MiB\n');
    const many = 'X-A: b\r\n'.repeat(2_100);
    const { client, first } = await send(
      px.port,
      `GET ${u}/ HTTP/1.1\r\nHost: a.test\r\n${many}Host: b.test\r\n\r\n`,
    );
    expect(asResponse(first)).toMatchObject({
      status: 400,
      headers: { 'x-reprise-error': 'bad-request' },
    });
    expect(await client.waitClosed()).toBe(true);
    expect(up.seen).toHaveLength(0);
  });
});

describe('framing that is valid is forwarded re-framed', () => {
  it('forwards a tab before chunked as chunked: one request, the whole body', async () => {
    const { up, px, u } = await setup();
    const smuggle = `GET ${u}/smuggled HTTP/1.1\r\n\r\n`;
    const chunked = `5\r\nhello\r\n${smuggle.length.toString(16)}\r\n${smuggle}\r\n0\r\n\r\n`;
    const { client, first } = await send(
      px.port,
      `POST ${u}/ HTTP/1.1\r\nTransfer-Encoding:\tchunked\r\n\r\n${chunked}`,
    );
    expect(asResponse(first).status).toBe(200);
    expect(up.seen.map((s) => [s.url, s.body.toString()])).toEqual([['/', `hello${smuggle}`]]);
    await expectNextRequestWorks(up, px.port, client);
  });
});

/** The upstream's raw header names, lower-case. */
function namesSeen(up: Upstream, index = 0): string[] {
  const raw = up.seen[index]?.rawHeaders ?? [];
  return raw.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase());
}

describe('hop-by-hop abuse and headers meant for the proxy', () => {
  it('gives the upstream one Host, the URI authority, when the Host header names another', async () => {
    const { up, px, u } = await setup();
    const { client, first } = await send(px.port, `GET ${u}/ HTTP/1.1\r\nHost: evil.test\r\n\r\n`);
    expect(asResponse(first).status).toBe(200);
    const raw = up.seen[0]?.rawHeaders ?? [];
    const hosts = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]?.toLowerCase() === 'host');
    expect(hosts).toEqual([up.authority]);
    client.destroy();
  });

  it('strips a header the client names in Connection (Connection: close, X-Forwarded-For)', async () => {
    const { up, px, u } = await setup();
    const { first } = await send(
      px.port,
      `GET ${u}/ HTTP/1.1\r\nConnection: close, X-Forwarded-For\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n`,
    );
    expect(asResponse(first).status).toBe(200);
    expect(namesSeen(up)).not.toContain('x-forwarded-for');
  });

  it('never forwards Keep-Alive, TE, Trailer, Proxy-* or Proxy (httpoxy) to the upstream', async () => {
    const { up, px, u } = await setup();
    const { client, first } = await send(
      px.port,
      `GET ${u}/ HTTP/1.1\r\nKeep-Alive: timeout=999\r\nTE: trailers\r\nTrailer: X-T\r\n` +
        'Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\n' +
        'Proxy: http://evil.test:1\r\nProxy-Anything: 1\r\nX-Kept: yes\r\n\r\n',
    );
    expect(asResponse(first).status).toBe(200);
    const names = namesSeen(up);
    for (const name of ['keep-alive', 'te', 'trailer', 'proxy-connection', 'proxy-authorization']) {
      expect(names).not.toContain(name);
    }
    expect(names).not.toContain('proxy');
    expect(names).not.toContain('proxy-anything');
    expect(names).toContain('x-kept');
    client.destroy();
  });

  it('serves an Upgrade: h2c request as plain HTTP/1.1 without passing the upgrade on', async () => {
    const { up, px, u } = await setup(LIMITS, [reply(200, 'plain')]);
    const { client, first } = await send(
      px.port,
      `GET ${u}/ HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n` +
        'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n',
    );
    const res = asResponse(first);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('plain');
    const names = namesSeen(up);
    expect(names).not.toContain('upgrade');
    expect(names).not.toContain('http2-settings');
    const raw = up.seen[0]?.rawHeaders ?? [];
    expect(raw.join(' ').toLowerCase()).not.toContain('upgrade');
    client.destroy();
  });

  it('refuses an Upgrade: h2c request with a body rather than lose the body', async () => {
    const { up, px, u } = await setup();
    const { client, first } = await send(
      px.port,
      `POST ${u}/ HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\nhello`,
    );
    expect(asResponse(first).status).toBe(400);
    expect(await client.waitClosed()).toBe(true);
    expect(up.seen).toHaveLength(0);
    await expectNextRequestWorks(up, px.port);
  });

  it('never passes hop-by-hop response headers, or the ones the upstream names, to the client', async () => {
    const { px, u } = await setup(LIMITS, [
      (_req, res) => {
        res.writeHead(
          200,
          [
            ['Connection', 'keep-alive, X-Secret'],
            ['X-Secret', 'upstream-only'],
            ['Keep-Alive', 'timeout=999, max=7'],
            ['Trailer', 'X-T'],
            ['Upgrade', 'h2c'],
            ['Proxy-Authenticate', 'Basic realm="x"'],
            ['Proxy-Connection', 'keep-alive'],
          ].flat(),
        );
        res.end('ok');
      },
    ]);
    const { client, first } = await send(px.port, `GET ${u}/ HTTP/1.1\r\n\r\n`);
    const res = asResponse(first);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('ok');
    for (const name of [
      'x-secret',
      'trailer',
      'upgrade',
      'proxy-authenticate',
      'proxy-connection',
    ]) {
      expect(res.headers[name]).toBeUndefined();
    }
    expect(res.headers['keep-alive'] ?? '').not.toContain('999');
    expect(res.headers.connection ?? '').not.toMatch(/x-secret/i);
    client.destroy();
  });
});

describe('Expect and Max-Forwards', () => {
  it('answers Expect: 100-continue itself, keeps Expect from the upstream, and forwards the body', async () => {
    const { up, px, u } = await setup();
    const client = await RawClient.connect(px.port);
    client.write(`POST ${u}/ HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n`);
    expect(asResponse(await client.read()).status).toBe(100);
    client.write('hello');
    const res = asResponse(await client.read());
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('hello');
    expect(up.seen[0]?.body.toString()).toBe('hello');
    expect(namesSeen(up)).not.toContain('expect');
    await expectNextRequestWorks(up, px.port, client);
  });

  it('answers an unknown expectation with 417 and sends nothing upstream', async () => {
    const { up, px, u } = await setup();
    const { client, first } = await send(px.port, `GET ${u}/ HTTP/1.1\r\nExpect: teapot\r\n\r\n`);
    expect(asResponse(first).status).toBe(417);
    expect(up.seen).toHaveLength(0);
    await expectNextRequestWorks(up, px.port, client);
  });

  it('answers OPTIONS with Max-Forwards: 0 itself, with Allow, and keeps the connection', async () => {
    const { up, px, u } = await setup();
    const { client, first } = await send(
      px.port,
      `OPTIONS ${u}/ HTTP/1.1\r\nMax-Forwards: 0\r\n\r\n`,
    );
    const res = asResponse(first);
    expect(res.status).toBe(200);
    expect(res.headers.allow).toContain('GET');
    expect(up.seen).toHaveLength(0);
    await expectNextRequestWorks(up, px.port, client);
  });

  it('forwards TRACE with Max-Forwards decremented', async () => {
    const { up, px, u } = await setup();
    const { client, first } = await send(
      px.port,
      `TRACE ${u}/ HTTP/1.1\r\nMax-Forwards: 2\r\n\r\n`,
    );
    expect(asResponse(first).status).toBe(200);
    expect(up.seen[0]?.headers['max-forwards']).toBe('1');
    client.destroy();
  });
});

const SLOW_LIMITS = `limits:
  headersTimeout: 1s
  idleTimeout: 500ms
`;

describe('slow clients and the connection cap', () => {
  it('cuts off a head sent one byte per 200ms around headersTimeout while others are served', async () => {
    const { up, px, u } = await setup(SLOW_LIMITS);
    const slow = await RawClient.connect(px.port);
    const startMs = Date.now();
    const trickling = slow.trickle(
      `GET ${u}/slow HTTP/1.1\r\nX-Pad: ${'a'.repeat(200)}\r\n\r\n`,
      200,
    );
    const statuses: number[] = [];
    while (!slow.closed && Date.now() - startMs < 4_000) {
      statuses.push((await viaProxy(px.port, 'GET', `${u}/fast`)).status);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const cut = await slow.read(1_000);
    const elapsedMs = Date.now() - startMs;
    await trickling;
    expect(cut.kind === 'closed' || cut.status === 408).toBe(true);
    expect(elapsedMs).toBeGreaterThanOrEqual(900);
    expect(elapsedMs).toBeLessThan(3_500);
    expect(statuses.length).toBeGreaterThan(3);
    expect(statuses.every((status) => status === 200)).toBe(true);
    expect(up.seen.map((s) => s.url)).not.toContain('/slow');
  });

  it('closes a client that stalls mid-body after idleTimeout, with 408', async () => {
    const { up, px, u } = await setup(SLOW_LIMITS);
    const client = await RawClient.connect(px.port);
    const startMs = Date.now();
    client.write(`POST ${u}/ HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789`);
    const res = asResponse(await client.read(3_000));
    expect(res.status).toBe(408);
    expect(Date.now() - startMs).toBeGreaterThanOrEqual(400);
    expect(await client.waitClosed()).toBe(true);
    expect(up.seen).toHaveLength(0);
    await expectNextRequestWorks(up, px.port);
  });

  it('closes a connection that sends nothing within idleTimeout', async () => {
    const { px } = await setup(SLOW_LIMITS);
    const client = await RawClient.connect(px.port);
    const startMs = Date.now();
    expect(await client.waitClosed(3_000)).toBe(true);
    expect(Date.now() - startMs).toBeGreaterThanOrEqual(400);
  });

  it('keeps a client whose upstream answers after more than idleTimeout', async () => {
    const { px, u } = await setup(SLOW_LIMITS, [delayed(1_200, reply(200, 'late'))]);
    const res = await viaProxy(px.port, 'GET', `${u}/`);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('late');
  });

  it('closes a client that stops reading its response after idleTimeout', async () => {
    const bodyBytes = 32 * 1024 * 1024;
    const { px, u } = await setup(SLOW_LIMITS, [reply(200, Buffer.alloc(bodyBytes, 97))]);
    const socket = connect({ host: '127.0.0.1', port: px.port });
    socket.on('error', () => {});
    socket.pause();
    socket.write(`GET ${u}/big HTTP/1.1\r\n\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    socket.resume();
    const closed = await Promise.race([
      once(socket, 'close').then(() => true),
      new Promise((resolve) => setTimeout(() => resolve(false), 3_000)),
    ]);
    socket.destroy();
    expect(closed).toBe(true);
    expect(received).toBeLessThan(bodyBytes);
  });

  it('closes the connection past maxClientConnections while the ones open keep working', async () => {
    const { up, px, u } = await setup('limits:\n  maxClientConnections: 5\n');
    const open: RawClient[] = [];
    for (let i = 0; i < 5; i++) {
      const client = await RawClient.connect(px.port);
      client.write(`GET ${u}/first HTTP/1.1\r\n\r\n`);
      expect(asResponse(await client.read()).status).toBe(200);
      open.push(client);
    }
    const sixth = await RawClient.connect(px.port);
    sixth.write(`GET ${u}/sixth HTTP/1.1\r\n\r\n`);
    expect((await sixth.read()).kind).toBe('closed');
    for (const client of open) {
      client.write(`GET ${u}/again HTTP/1.1\r\n\r\n`);
      expect(asResponse(await client.read()).status).toBe(200);
    }
    expect(up.seen.map((s) => s.url)).not.toContain('/sixth');
    open[0]?.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await expectNextRequestWorks(up, px.port);
    for (const client of open) client.destroy();
  });
});
