/**
 * The request ids reprise makes: random version 4 UUIDs (RFC 9562 §5.4) from the crypto
 * generator, as `randomUUID` makes them. One is made for most requests, and node's builds its
 * text of ~20 joined pieces (a tree of strings to collect, flattened where it is read); this
 * writes the 36 characters into one kept buffer and reads them out as one string. Randomness
 * is drawn for `IDS_PER_DRAW` ids at a time, as node does.
 */
import { randomFillSync } from 'node:crypto';

const IDS_PER_DRAW = 256;
const entropy = Buffer.allocUnsafeSlow(16 * IDS_PER_DRAW);
let used = IDS_PER_DRAW;
const text = Buffer.from('00000000-0000-4000-8000-000000000000', 'latin1');
const HEX = Buffer.from('0123456789abcdef', 'latin1');
/** Where each of the 16 bytes goes in the text: two hex digits each, around the dashes. */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

export function randomRequestId(): string {
  if (used === IDS_PER_DRAW) {
    randomFillSync(entropy);
    used = 0;
  }
  const from = used++ * 16;
  // the version (4) in the high nibble of byte 6, the variant (10) in the top bits of byte 8
  entropy[from + 6] = ((entropy[from + 6] as number) & 0x0f) | 0x40;
  entropy[from + 8] = ((entropy[from + 8] as number) & 0x3f) | 0x80;
  for (let i = 0; i < 16; i++) {
    const byte = entropy[from + i] as number;
    const at = AT[i] as number;
    text[at] = HEX[byte >> 4] as number;
    text[at + 1] = HEX[byte & 0x0f] as number;
  }
  return text.toString('latin1', 0, 36);
}
