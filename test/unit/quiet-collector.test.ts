import { describe, expect, it } from 'vitest';
import { QuietCollector } from '../../src/quiet-collector.ts';

const MiB = 1024 ** 2;

/** A collector over a heap whose size the test sets; `collect` shrinks it to `afterCollect`. */
function setup(afterCollect = 20 * MiB, quietPeriods = 1) {
  const heap = { bytes: 20 * MiB, collections: 0 };
  const collector = new QuietCollector({
    heapBytes: () => heap.bytes,
    collect: () => {
      heap.collections++;
      heap.bytes = afterCollect;
    },
    minGrowthBytes: 8 * MiB,
    quietPeriods,
  });
  return { heap, collector };
}

describe('QuietCollector', () => {
  it('collects once, in the first quiet period after busy ones in which the heap grew', () => {
    const { heap, collector } = setup();
    expect(collector.tick(100, 3)).toBe(false); // busy
    heap.bytes = 40 * MiB;
    expect(collector.tick(900, 0)).toBe(false); // requests arrived during the period
    expect(collector.tick(900, 0)).toBe(true); // none arrived: quiet
    expect(collector.tick(900, 0)).toBe(false); // still quiet: once is enough
    expect(heap.collections).toBe(1);
  });

  it('never collects on a process that has seen no request', () => {
    const { heap, collector } = setup();
    heap.bytes = 60 * MiB;
    for (let i = 0; i < 5; i++) expect(collector.tick(0, 0)).toBe(false);
    expect(heap.collections).toBe(0);
  });

  it('waits while a request is still in flight, though none arrived', () => {
    const { heap, collector } = setup();
    collector.tick(1, 1);
    heap.bytes = 40 * MiB;
    expect(collector.tick(1, 1)).toBe(false);
    expect(collector.tick(1, 0)).toBe(true);
  });

  it('collects after the first busy spell whatever the heap, then only after minGrowthBytes', () => {
    const { heap, collector } = setup();
    collector.tick(5, 0);
    expect(collector.tick(5, 0)).toBe(true); // the heap left at 20 MiB
    collector.tick(6, 0);
    heap.bytes = 27 * MiB;
    expect(collector.tick(6, 0)).toBe(false);
    expect(heap.collections).toBe(1);
  });

  it('measures growth from the heap left by the last collection', () => {
    const { heap, collector } = setup(30 * MiB);
    collector.tick(1, 0);
    expect(collector.tick(1, 0)).toBe(true); // the heap is now 30 MiB
    collector.tick(2, 0);
    heap.bytes = 36 * MiB; // +6 MiB since the collection
    expect(collector.tick(2, 0)).toBe(false);
    collector.tick(3, 0);
    heap.bytes = 39 * MiB; // +9 MiB
    expect(collector.tick(3, 0)).toBe(true);
    expect(heap.collections).toBe(2);
  });

  it('waits for quietPeriods periods in a row without a request', () => {
    const { heap, collector } = setup(20 * MiB, 3);
    collector.tick(1, 0);
    heap.bytes = 40 * MiB;
    expect(collector.tick(1, 0)).toBe(false);
    expect(collector.tick(1, 0)).toBe(false);
    expect(collector.tick(2, 0)).toBe(false); // a request: the count starts again
    expect(collector.tick(2, 0)).toBe(false);
    expect(collector.tick(2, 0)).toBe(false);
    expect(collector.tick(2, 0)).toBe(true);
  });
});
