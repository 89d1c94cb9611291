import { describe, expect, it } from 'vitest';
import { randomRequestId } from '../../src/proxy/request-id.ts';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('randomRequestId', () => {
  it('makes version 4 UUIDs, each different, across many draws of randomness', () => {
    const ids = Array.from({ length: 2000 }, randomRequestId);
    for (const id of ids) expect(id).toMatch(UUID_V4);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('uses every hex digit in every random position', () => {
    const ids = Array.from({ length: 2000 }, randomRequestId);
    for (let at = 0; at < 36; at++) {
      if ([8, 13, 14, 18, 23].includes(at)) continue;
      const seen = new Set(ids.map((id) => id[at]));
      // the variant position takes only 8, 9, a and b
      expect(seen.size).toBe(at === 19 ? 4 : 16);
    }
  });
});
