/**
 * Writes config/reprise.schema.json from src/config/schema.ts (the one source of truth).
 * Run after changing the schema: `npx node scripts/write-schema.ts`. The drift test fails
 * until the file is regenerated.
 */
import { writeFileSync } from 'node:fs';
import { schemaJson } from '../src/config/schema.ts';

const target = new URL('../config/reprise.schema.json', import.meta.url);
writeFileSync(target, schemaJson());
process.stdout.write(`wrote ${target.pathname}\n`);
