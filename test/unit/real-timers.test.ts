import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { REAL_TIMERS } from '../../src/timers.ts';

/**
 * A stalled process (throttled by its CPU limit, or a busy node) wakes with a deadline due and
 * the answer it races already in the socket. These tests make that stall on purpose: the
 * answer is written, then the event loop is held until the timer is well past due.
 */
function holdEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // the stall itself
  }
}

let server: Server | undefined;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  server?.close();
  server = undefined;
});

/** A connected pair on loopback: `from` writes, `to` reads. */
async function socketPair(): Promise<{ from: Socket; to: Socket }> {
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer(resolve).listen(0, '127.0.0.1');
  });
  await once(server as Server, 'listening');
  const address = (server as Server).address() as { port: number };
  const from = connect(address.port, '127.0.0.1');
  await once(from, 'connect');
  const to = await accepted;
  sockets.push(from, to);
  return { from, to };
}

describe('REAL_TIMERS', () => {
  it('reads the I/O already waiting before a deadline that came due with it, which it clears', async () => {
    const { from, to } = await socketPair();
    const order: string[] = [];
    const timer = REAL_TIMERS.set(() => order.push('deadline'), 1);
    // set just after it, and cleared by nothing: once this one has run, so would the deadline
    const passed = new Promise<void>((resolve) => REAL_TIMERS.set(resolve, 1));
    to.on('data', () => {
      order.push('answer');
      REAL_TIMERS.clear(timer);
    });
    from.write('answer');
    holdEventLoop(30);
    await passed;
    expect(order).toEqual(['answer']);
  });

  it('re-arms a deadline refreshed by I/O that came with it, and fires it once, after the full delay', async () => {
    const { from, to } = await socketPair();
    const order: string[] = [];
    const timer = REAL_TIMERS.set(() => order.push('deadline'), 5);
    // set just after the refresh with the same delay: the re-armed deadline runs before it
    const passed = new Promise<void>((resolve) => {
      to.on('data', () => {
        order.push('chunk');
        timer.refresh();
        REAL_TIMERS.set(resolve, 5);
      });
    });
    from.write('chunk');
    holdEventLoop(30);
    await passed;
    expect(order).toEqual(['chunk', 'deadline']);
  });

  it('fires a deadline nothing clears, and never one that was cleared', async () => {
    const order: string[] = [];
    const cleared = REAL_TIMERS.set(() => order.push('cleared'), 1);
    REAL_TIMERS.clear(cleared);
    // set after it with the same delay: the cleared one would have run first
    await new Promise<void>((resolve) => REAL_TIMERS.set(resolve, 1));
    expect(order).toEqual([]);
  });
});
