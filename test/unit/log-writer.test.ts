import { describe, expect, it } from 'vitest';
import { LogWriter } from '../../src/log-writer.ts';

/** A reader that takes what `take` allows per write (default: everything). */
function reader(take: (bytes: Buffer) => number | Error = (bytes) => bytes.length) {
  const got: Buffer[] = [];
  const writes: number[] = [];
  return {
    writeBytes(bytes: Buffer): number {
      const n = take(bytes);
      if (n instanceof Error) throw n;
      got.push(Buffer.from(bytes.subarray(0, n)));
      writes.push(n);
      return n;
    },
    text: () => Buffer.concat(got).toString(),
    writes,
  };
}

function errno(code: string): Error {
  return Object.assign(new Error(code), { code });
}

const line = (i: number) => `{"n":${i}}\n`;

/** A writer of 10-byte batches and a 30-byte cap, its reader full until `startReading()`. */
function behindFullReader() {
  let full = true;
  const r = reader((bytes) => (full ? errno('EAGAIN') : bytes.length));
  const w = new LogWriter({
    writeBytes: r.writeBytes,
    batchBytes: 10,
    maxPendingBytes: 30,
    droppedLine: (dropped) => `${dropped} dropped\n`,
  });
  const startReading = () => {
    full = false;
  };
  return { r, w, startReading };
}

describe('LogWriter', () => {
  it('writes nothing until a batch is full, then every line in order in one write', () => {
    const r = reader();
    const w = new LogWriter({ writeBytes: r.writeBytes, batchBytes: 40 });
    for (let i = 0; i < 4; i++) w.write(line(i));
    expect(r.writes).toEqual([]);
    w.write(line(4));
    expect(r.writes).toHaveLength(1);
    expect(r.text()).toBe([0, 1, 2, 3, 4].map(line).join(''));
  });

  it('flush writes what waits, however little', () => {
    const r = reader();
    const w = new LogWriter({ writeBytes: r.writeBytes });
    w.write(line(1));
    expect(w.flush()).toBe(true);
    expect(r.text()).toBe(line(1));
    expect(w.flush()).toBe(true);
    expect(r.writes).toHaveLength(1);
  });

  it('keeps what a reader did not take and writes it first next time', () => {
    let calls = 0;
    const r = reader((bytes) => (++calls === 1 ? 3 : bytes.length));
    const w = new LogWriter({ writeBytes: r.writeBytes });
    w.write(line(1));
    expect(w.flush()).toBe(false);
    w.write(line(2));
    expect(w.flush()).toBe(true);
    expect(r.text()).toBe(line(1) + line(2));
  });

  it('holds lines while the reader is full, drops past the cap, and says how many', () => {
    const { r, w, startReading } = behindFullReader();
    for (let i = 0; i < 10; i++) w.write(line(i));
    expect(w.flush()).toBe(false);
    // 8-byte lines: two in the refused write, two more until 32 bytes wait, six dropped
    expect(w.dropped).toBe(6);
    startReading();
    expect(w.flush()).toBe(true);
    const lines = r.text().trimEnd().split('\n');
    expect(lines.slice(0, 4)).toEqual([0, 1, 2, 3].map((i) => line(i).trimEnd()));
    expect(lines).toHaveLength(5);
    expect(lines[4]).toBe('6 dropped');
    expect(w.dropped).toBe(0);
  });

  it('holds no more than the cap however many flushes the reader refuses', () => {
    const { r, w, startReading } = behindFullReader();
    // a flush between every few lines, as the flush timer does, each one refused
    for (let i = 0; i < 100; i++) {
      w.write(line(i));
      if (i % 3 === 0) expect(w.flush()).toBe(false);
    }
    expect(w.dropped).toBe(96);
    startReading();
    expect(w.flush()).toBe(true);
    expect(r.text()).toBe(`${[0, 1, 2, 3].map(line).join('')}96 dropped\n`);
  });

  it('stops writing once stdout is closed', () => {
    const r = reader(() => errno('EPIPE'));
    const w = new LogWriter({ writeBytes: r.writeBytes });
    w.write(line(1));
    expect(w.flush()).toBe(true);
    w.write(line(2));
    expect(w.flush()).toBe(true);
    expect(r.writes).toEqual([]);
  });

  it('drain waits for a reader that is briefly full', () => {
    let refusals = 2;
    const r = reader((bytes) => (refusals-- > 0 ? errno('EAGAIN') : bytes.length));
    const w = new LogWriter({ writeBytes: r.writeBytes });
    w.write(line(1));
    w.drain(1_000);
    expect(r.text()).toBe(line(1));
  });

  it('drain gives up at its deadline', () => {
    let clock = 0;
    const r = reader(() => errno('EAGAIN'));
    const w = new LogWriter({ writeBytes: r.writeBytes, now: () => (clock += 100) });
    w.write(line(1));
    w.drain(1_000);
    expect(r.writes).toEqual([]);
    expect(clock).toBeGreaterThanOrEqual(1_000);
  });
});
