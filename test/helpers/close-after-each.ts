/**
 * What a test started is closed when it ends. The proxy and upstream helpers register what
 * they start here; a file that calls `closeAfterEach()` has all of it closed after each of
 * its tests, the latest first (so a proxy goes before the upstream behind it). Each close
 * runs once, so a test may still close something itself. Such a file starts its proxies and
 * upstreams inside its tests, not in `beforeAll`.
 */
import { afterEach } from 'vitest';

const opened: (() => Promise<void>)[] = [];

/** Registers `close` and returns the once-only version to expose as the thing's `close`. */
export function closeLater(close: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  const once = () => {
    closing ??= close();
    return closing;
  };
  opened.push(once);
  return once;
}

export function closeAfterEach(): void {
  afterEach(async () => {
    for (let close = opened.pop(); close !== undefined; close = opened.pop()) await close();
  });
}
