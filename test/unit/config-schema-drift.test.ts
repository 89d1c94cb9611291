import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EMBEDDED_DEFAULTS } from '../../src/config/defaults.ts';
import { schemaJson, validateDocument } from '../../src/config/schema.ts';

const SHIPPED = 'config/reprise.schema.json';

/** Every object schema in `node`, with its JSON pointer. */
function objectSchemas(node: unknown, pointer = '#'): [string, Record<string, unknown>][] {
  if (typeof node !== 'object' || node === null) return [];
  const found: [string, Record<string, unknown>][] = [];
  const record = node as Record<string, unknown>;
  if (record.type === 'object') found.push([pointer, record]);
  for (const [key, child] of Object.entries(record)) {
    found.push(...objectSchemas(child, `${pointer}/${key}`));
  }
  return found;
}

describe('config/reprise.schema.json', () => {
  it('is what src/config/schema.ts generates (else run: npx node scripts/write-schema.ts)', () => {
    expect(readFileSync(SHIPPED, 'utf8')).toBe(schemaJson());
  });

  it('rejects unknown keys in every map', () => {
    const open = objectSchemas(JSON.parse(schemaJson()))
      .filter(([, schema]) => schema.additionalProperties !== false)
      .map(([pointer]) => pointer);
    expect(open).toEqual([]);
  });

  it('holds no typebox internals such as ~refine (code, not JSON Schema)', () => {
    expect(schemaJson()).not.toMatch(/"~\w+":/);
  });

  it('accepts the embedded defaults', () => {
    expect(validateDocument(EMBEDDED_DEFAULTS)).toEqual([]);
  });
});
