import { describe, expect, it } from 'vitest';
import {
  declaresBody,
  guardRequest,
  isForThisProxy,
  isH2cUpgrade,
  isOverlongRequestLine,
  type ParserError,
  parserErrorAnswer,
  type RequestShape,
} from '../../src/proxy/inbound/request-guard.ts';

const MAX_URL_BYTES = 64;

function shape(overrides: Partial<RequestShape> = {}): RequestShape {
  return {
    method: 'GET',
    url: 'http://example.test/',
    httpVersionMajor: 1,
    httpVersionMinor: 1,
    rawHeaders: ['Host', 'example.test'],
    ...overrides,
  };
}

function errorOf(overrides: Partial<RequestShape>): string | undefined {
  return guardRequest(shape(overrides), MAX_URL_BYTES)?.error;
}

describe('guardRequest', () => {
  it('passes a plain HTTP/1.1 request', () => {
    expect(guardRequest(shape(), MAX_URL_BYTES)).toBeUndefined();
  });

  it('passes an HTTP/1.0 request with Content-Length', () => {
    expect(errorOf({ httpVersionMinor: 0, rawHeaders: ['Content-Length', '5'] })).toBeUndefined();
  });

  it('passes a chunked request whatever the case and surrounding whitespace of "chunked"', () => {
    for (const value of ['chunked', 'Chunked', ' chunked', '\tCHUNKED ']) {
      expect(errorOf({ method: 'POST', rawHeaders: ['Transfer-Encoding', value] })).toBeUndefined();
    }
  });

  it('passes a request without a Host header (absolute-form names the target)', () => {
    expect(errorOf({ rawHeaders: [] })).toBeUndefined();
  });

  it('refuses HTTP/0.9 with 505', () => {
    expect(errorOf({ httpVersionMajor: 0, httpVersionMinor: 9 })).toBe('version-not-supported');
  });

  it('refuses HTTP/2.0 with 505', () => {
    expect(errorOf({ httpVersionMajor: 2, httpVersionMinor: 0 })).toBe('version-not-supported');
  });

  it('refuses HTTP/1.2 with 505', () => {
    expect(errorOf({ httpVersionMinor: 2 })).toBe('version-not-supported');
  });

  it('refuses a method that is not a token with 400', () => {
    for (const method of ['', 'G(T', 'GE T', 'GET\u0000', 'GÉT']) {
      expect(errorOf({ method })).toBe('bad-request');
    }
  });

  it('passes an extension method that is a token', () => {
    expect(errorOf({ method: 'PROPFIND' })).toBeUndefined();
  });

  it('refuses a target one byte over maxUrlBytes with 414', () => {
    const url = `http://e.test/${'a'.repeat(MAX_URL_BYTES - 13)}`;
    expect(url.length).toBe(MAX_URL_BYTES + 1);
    expect(errorOf({ url })).toBe('uri-too-long');
  });

  it('passes a target of exactly maxUrlBytes', () => {
    const url = `http://e.test/${'a'.repeat(MAX_URL_BYTES - 14)}`;
    expect(errorOf({ url })).toBeUndefined();
  });

  it('refuses two Host headers, even equal ones', () => {
    expect(errorOf({ rawHeaders: ['Host', 'a.test', 'host', 'a.test'] })).toBe('bad-request');
  });

  it('refuses two Content-Length headers, even equal ones', () => {
    const rawHeaders = ['Content-Length', '5', 'content-length', '5'];
    expect(errorOf({ method: 'POST', rawHeaders })).toBe('bad-request');
  });

  it('refuses a Content-Length that is not a number', () => {
    for (const value of ['5, 5', '+5', '-1', '0x5', '']) {
      expect(errorOf({ method: 'POST', rawHeaders: ['Content-Length', value] })).toBe(
        'bad-request',
      );
    }
  });

  it('refuses Content-Length together with Transfer-Encoding', () => {
    const rawHeaders = ['Content-Length', '5', 'Transfer-Encoding', 'chunked'];
    expect(errorOf({ method: 'POST', rawHeaders })).toBe('bad-request');
  });

  it('refuses Transfer-Encoding on HTTP/1.0', () => {
    const rawHeaders = ['Transfer-Encoding', 'chunked'];
    expect(errorOf({ method: 'POST', httpVersionMinor: 0, rawHeaders })).toBe('bad-request');
  });

  it('refuses any transfer coding other than a lone chunked', () => {
    for (const value of [
      'xchunked',
      'chunked, identity',
      'gzip, chunked',
      'identity',
      '\vchunked',
    ]) {
      expect(errorOf({ method: 'POST', rawHeaders: ['Transfer-Encoding', value] })).toBe(
        'bad-request',
      );
    }
  });

  it('refuses two Transfer-Encoding headers', () => {
    const rawHeaders = ['Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'];
    expect(errorOf({ method: 'POST', rawHeaders })).toBe('bad-request');
  });

  it('refuses TRACE with Max-Forwards: 0 instead of reflecting it', () => {
    expect(errorOf({ method: 'TRACE', rawHeaders: ['Max-Forwards', '0'] })).toBe('bad-request');
  });

  it('passes TRACE and OPTIONS with a positive Max-Forwards', () => {
    expect(errorOf({ method: 'TRACE', rawHeaders: ['Max-Forwards', '3'] })).toBeUndefined();
    expect(errorOf({ method: 'OPTIONS', rawHeaders: ['Max-Forwards', '1'] })).toBeUndefined();
  });

  it('refuses a malformed or repeated Max-Forwards on OPTIONS', () => {
    expect(errorOf({ method: 'OPTIONS', rawHeaders: ['Max-Forwards', 'x'] })).toBe('bad-request');
    const twice = ['Max-Forwards', '1', 'Max-Forwards', '2'];
    expect(errorOf({ method: 'OPTIONS', rawHeaders: twice })).toBe('bad-request');
  });

  it('ignores Max-Forwards on other methods', () => {
    expect(errorOf({ rawHeaders: ['Max-Forwards', '0'] })).toBeUndefined();
    expect(errorOf({ rawHeaders: ['Max-Forwards', 'x'] })).toBeUndefined();
  });
});

describe('isForThisProxy', () => {
  it('is true for OPTIONS with Max-Forwards: 0', () => {
    expect(isForThisProxy(shape({ method: 'OPTIONS', rawHeaders: ['max-forwards', '0'] }))).toBe(
      true,
    );
  });

  it('is false for OPTIONS with a positive or no Max-Forwards', () => {
    expect(isForThisProxy(shape({ method: 'OPTIONS', rawHeaders: ['Max-Forwards', '1'] }))).toBe(
      false,
    );
    expect(isForThisProxy(shape({ method: 'OPTIONS', rawHeaders: [] }))).toBe(false);
  });

  it('is false for GET with Max-Forwards: 0', () => {
    expect(isForThisProxy(shape({ rawHeaders: ['Max-Forwards', '0'] }))).toBe(false);
  });
});

describe('isOverlongRequestLine', () => {
  const line = Buffer.from(`GET http://e.test/${'a'.repeat(100)}`, 'latin1');

  it('is true when the parser stopped inside the request line', () => {
    expect(isOverlongRequestLine(line, line.length)).toBe(true);
  });

  it('is true for an origin-form target', () => {
    expect(isOverlongRequestLine(Buffer.from(`GET /${'a'.repeat(100)}`), undefined)).toBe(true);
  });

  it('is false once the request line has ended', () => {
    const head = Buffer.from(`GET http://e.test/ HTTP/1.1\r\nX-Big: ${'a'.repeat(100)}`);
    expect(isOverlongRequestLine(head, head.length)).toBe(false);
  });

  it('is false for a chunk from the middle of a header value', () => {
    expect(isOverlongRequestLine(Buffer.from('aaaa bbbb cccc'), 14)).toBe(false);
  });

  it('is false without a packet', () => {
    expect(isOverlongRequestLine(undefined, undefined)).toBe(false);
  });
});

function parserError(code: string, extra: Partial<ParserError> = {}): ParserError {
  return Object.assign(new Error(code), { code, ...extra });
}

describe('parserErrorAnswer', () => {
  it('answers a head over maxHeaderBytes with 431', () => {
    const packet = Buffer.from('GET / HTTP/1.1\r\nX-Big: aaaa');
    expect(parserErrorAnswer(parserError('HPE_HEADER_OVERFLOW', { rawPacket: packet }))).toBe(
      'headers-too-large',
    );
  });

  it('answers an overflow inside the request line with 414', () => {
    const packet = Buffer.from(`GET http://e.test/${'a'.repeat(100)}`);
    expect(parserErrorAnswer(parserError('HPE_HEADER_OVERFLOW', { rawPacket: packet }))).toBe(
      'uri-too-long',
    );
  });

  it('answers a well-formed unsupported version with 505', () => {
    const err = parserError('HPE_INVALID_VERSION', { reason: 'Invalid HTTP version' });
    expect(parserErrorAnswer(err)).toBe('version-not-supported');
  });

  it('answers a malformed version with 400', () => {
    const err = parserError('HPE_INVALID_VERSION', { reason: 'Expected CRLF after version' });
    expect(parserErrorAnswer(err)).toBe('bad-request');
  });

  it('answers the HTTP/2 preface with 505', () => {
    expect(parserErrorAnswer(parserError('HPE_PAUSED_H2_UPGRADE'))).toBe('version-not-supported');
  });

  it('answers a head that did not arrive within headersTimeout with 408', () => {
    expect(parserErrorAnswer(parserError('ERR_HTTP_REQUEST_TIMEOUT'))).toBe('request-timeout');
  });

  it('answers every other parser error with 400', () => {
    for (const code of [
      'HPE_INVALID_METHOD',
      'HPE_INVALID_HEADER_TOKEN',
      'HPE_INVALID_CHUNK_SIZE',
    ]) {
      expect(parserErrorAnswer(parserError(code))).toBe('bad-request');
    }
  });
});

describe('isH2cUpgrade and declaresBody', () => {
  it('finds h2c in an Upgrade list, whatever its case', () => {
    expect(isH2cUpgrade({ upgrade: 'H2C' })).toBe(true);
    expect(isH2cUpgrade({ upgrade: 'foo, h2c' })).toBe(true);
    expect(isH2cUpgrade({ upgrade: 'websocket' })).toBe(false);
    expect(isH2cUpgrade({})).toBe(false);
  });

  it('sees a body in a non-zero Content-Length or any Transfer-Encoding', () => {
    expect(declaresBody({ 'content-length': '5' })).toBe(true);
    expect(declaresBody({ 'transfer-encoding': 'chunked' })).toBe(true);
    expect(declaresBody({ 'content-length': '0' })).toBe(false);
    expect(declaresBody({})).toBe(false);
  });
});
