/**
 * A JSON line made straight into bytes, piece by piece: the access line is written on every
 * request, and made as a string it was ~30 joined pieces that had to be flattened and encoded
 * again into the log writer's buffer. Here each piece is copied once into one kept buffer; a
 * value is checked for what JSON must escape as it is copied, and only such a value (or one
 * that is not ASCII) goes the slow way, through JSON.stringify.
 */

const MAX_BYTES_PER_UNIT = 6;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

export class JsonLine {
  #bytes: Buffer = Buffer.allocUnsafeSlow(1024);
  #length = 0;

  /** Starts a new line; what `bytes` gave before is overwritten. */
  reset(): this {
    this.#length = 0;
    return this;
  }

  /** ASCII text that needs no escaping (the line's own keys and punctuation), as it is. */
  raw(text: string): this {
    const bytes = this.#room(text.length);
    let at = this.#length;
    for (let i = 0; i < text.length; i++) bytes[at++] = text.charCodeAt(i);
    this.#length = at;
    return this;
  }

  /** `value` as a JSON string, quotes included. */
  string(value: string): this {
    // the two quotes and, the slow way, at most 6 bytes per UTF-16 unit (`\u001f`)
    const bytes = this.#room(value.length * MAX_BYTES_PER_UNIT + 2);
    const start = this.#length;
    let at = start;
    bytes[at++] = QUOTE;
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      // quote, backslash, controls, and everything past ASCII (lone surrogates among them)
      if (c < 0x20 || c === QUOTE || c === BACKSLASH || c >= 0x80) {
        this.#length = start + bytes.write(JSON.stringify(value), start, 'utf8');
        return this;
      }
      bytes[at++] = c;
    }
    bytes[at++] = QUOTE;
    this.#length = at;
    return this;
  }

  /** As JSON.stringify writes a number (null for NaN and the infinities). */
  number(value: number): this {
    // the line's numbers are counts, sizes and the time in ms: digits, without a string
    if (Number.isSafeInteger(value) && value >= 0) return this.#digits(value);
    return this.raw(Number.isFinite(value) ? String(value) : 'null');
  }

  #digits(value: number): this {
    let count = 1;
    for (let rest = value; rest >= 10; rest = (rest - (rest % 10)) / 10) count++;
    const bytes = this.#room(count);
    let at = this.#length + count;
    this.#length = at;
    let rest = value;
    do {
      const digit = rest % 10;
      bytes[--at] = 0x30 + digit;
      rest = (rest - digit) / 10;
    } while (rest > 0);
    return this;
  }

  /** Bytes of the line so far: `buffer[0, length)`, valid until the next `reset`. */
  get buffer(): Buffer {
    return this.#bytes;
  }

  get length(): number {
    return this.#length;
  }

  toString(): string {
    return this.#bytes.toString('utf8', 0, this.#length);
  }

  #room(more: number): Buffer {
    this.#bytes = withRoom(this.#bytes, this.#length, more);
    return this.#bytes;
  }
}

/**
 * `bytes`, whose first `used` bytes are kept, with room for `more` after them: itself, or a
 * copy at least twice its size.
 */
export function withRoom(bytes: Buffer, used: number, more: number): Buffer {
  const needed = used + more;
  if (needed <= bytes.length) return bytes;
  const bigger = Buffer.allocUnsafeSlow(Math.max(needed, bytes.length * 2));
  bytes.copy(bigger, 0, 0, used);
  return bigger;
}
