import { describe, expect, it } from 'vitest';
import { JsonLine } from '../../src/json-line.ts';

describe('JsonLine', () => {
  it('writes strings as JSON.stringify does, escapes and non-ASCII included', () => {
    const values = [
      'plain',
      '',
      'a "quoted" \\ value',
      'line\nbreak\t\u0001\u001f',
      'caf\u00e9 \u65e5\u672c',
      'lone \ud800 surrogate',
      'pair \ud83d\ude00',
    ];
    const line = new JsonLine();
    for (const value of values) {
      line.reset().string(value);
      expect(line.toString()).toBe(JSON.stringify(value));
      expect(JSON.parse(line.toString())).toBe(value);
    }
  });

  it('writes numbers as JSON.stringify does', () => {
    const line = new JsonLine();
    for (const value of [
      0,
      7,
      10,
      57,
      99,
      100,
      1_796_412_856_115,
      Number.MAX_SAFE_INTEGER,
      2 ** 53,
      -3,
      -0,
      1.5,
      1e21,
      Number.NaN,
      Number.POSITIVE_INFINITY,
    ]) {
      line.reset().number(value);
      expect(line.toString()).toBe(JSON.stringify(value));
    }
  });

  it('grows for a long line and keeps what came before', () => {
    const line = new JsonLine();
    const long = '/x'.repeat(5000);
    line.reset().raw('{"path":').string(long).raw(',"odd":').string('\u00e9'.repeat(2000)).raw('}');
    expect(JSON.parse(line.toString())).toEqual({ path: long, odd: '\u00e9'.repeat(2000) });
    expect(line.length).toBe(Buffer.byteLength(line.toString()));
    expect(line.buffer.subarray(0, line.length).toString()).toBe(line.toString());
  });

  it('starts over on reset', () => {
    const line = new JsonLine();
    line.reset().raw('{"a":').number(1).raw('}');
    line.reset().raw('{"b":').number(2).raw('}');
    expect(line.toString()).toBe('{"b":2}');
  });
});
