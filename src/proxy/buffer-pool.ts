/**
 * Bounds the bytes held by all replay copies together (`limits.maxBufferedBytes`).
 * Callers reserve before they keep a chunk and release in `finally`.
 */
export class BufferPool {
  capacityBytes: number;
  #usedBytes = 0;

  constructor(capacityBytes: number) {
    this.capacityBytes = capacityBytes;
  }

  get usedBytes(): number {
    return this.#usedBytes;
  }

  tryReserve(bytes: number): boolean {
    if (this.#usedBytes + bytes > this.capacityBytes) return false;
    this.#usedBytes += bytes;
    return true;
  }

  release(bytes: number): void {
    this.#usedBytes -= bytes;
  }
}
