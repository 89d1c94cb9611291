import { EventEmitter } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  RACE_AFTER_MS,
  RACE_MAX,
  raceConnect,
  SpareConnects,
} from '../../src/proxy/upstream/connect-race.ts';
import type { Timers } from '../../src/timers.ts';
import { type BlackHole, startBlackHole } from '../helpers/fault-relay.ts';

class FakeSocket extends EventEmitter {
  destroyed = false;
  destroy(): void {
    this.destroyed = true;
  }
}

/** Timers that fire only when the test says so: `fire` fires every one armed, whatever its delay. */
function manualTimers(): { timers: Timers; fire(): void; pending(): number } {
  let due: (() => void)[] = [];
  return {
    timers: {
      set: (fn) => {
        due.push(fn);
        return { refresh: () => fn, fn };
      },
      clear: (timer) => {
        const armed = timer as { fn?: () => void } | undefined;
        due = due.filter((fn) => fn !== armed?.fn);
      },
    },
    fire() {
      const now = due;
      due = [];
      for (const fn of now) fn();
    },
    pending: () => due.length,
  };
}

function race(max: number, spares?: SpareConnects) {
  const timers = manualTimers();
  const sockets: FakeSocket[] = [];
  const outcome: { winner?: FakeSocket; error?: Error } = {};
  const cancel = raceConnect(
    () => {
      const socket = new FakeSocket();
      sockets.push(socket);
      return socket;
    },
    {
      connected: (socket) => {
        expect(outcome).toEqual({});
        outcome.winner = socket;
      },
      failed: (error) => {
        expect(outcome).toEqual({});
        outcome.error = error;
      },
    },
    { afterMs: 250, max, timers: timers.timers, ...(spares !== undefined && { spares }) },
  );
  return { timers, sockets, outcome, cancel };
}

describe('raceConnect', () => {
  it('makes one connect when it completes before the attempt delay', () => {
    const { timers, sockets, outcome } = race(3);
    expect(sockets).toHaveLength(1);
    sockets[0]?.emit('connect');
    expect(outcome.winner).toBe(sockets[0]);
    expect(sockets[0]?.destroyed).toBe(false);
    expect(timers.pending()).toBe(0);
  });

  it('starts a fresh connect each time the delay passes, up to max; the first wins', () => {
    const { timers, sockets, outcome } = race(3);
    timers.fire();
    timers.fire();
    expect(sockets).toHaveLength(3);
    // the bound is reached: no further timer
    expect(timers.pending()).toBe(0);
    sockets[1]?.emit('connect');
    expect(outcome.winner).toBe(sockets[1]);
    expect(sockets.map((s) => s.destroyed)).toEqual([true, false, true]);
    // a loser that connects (or fails) late changes nothing
    sockets[2]?.emit('connect');
    sockets[0]?.emit('error', new Error('late'));
    expect(outcome.winner).toBe(sockets[1]);
  });

  it('ends the whole race with the first error, as one connect would', () => {
    const { timers, sockets, outcome } = race(3);
    timers.fire();
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    sockets[0]?.emit('error', refused);
    expect(outcome.error).toBe(refused);
    expect(sockets.every((s) => s.destroyed)).toBe(true);
    expect(timers.pending()).toBe(0);
  });

  it('as embedded, sends a SYN at least every 250 ms through a default 3.5 s connect', () => {
    const { timers, sockets } = race(RACE_MAX);
    while (timers.pending() > 0) timers.fire();
    // racer i starts at i * 250 ms; the kernel sends its SYN again 1 s and 3 s later
    const syns = sockets
      .flatMap((_, i) => [0, 1000, 3000].map((resend) => i * RACE_AFTER_MS + resend))
      .filter((ms) => ms <= 3500)
      .sort((a, b) => a - b);
    const gaps = syns.slice(1).map((ms, i) => ms - (syns[i] as number));
    expect(Math.max(...gaps)).toBeLessThanOrEqual(RACE_AFTER_MS);
    expect(syns.at(-1)).toBe(3500);
  });

  it('with max 1 is a plain connect', () => {
    const { timers, sockets } = race(1);
    expect(timers.pending()).toBe(0);
    expect(sockets).toHaveLength(1);
  });

  it('cancel destroys every racer and stops the timer, and never the winner', () => {
    const first = race(3);
    first.timers.fire();
    first.cancel();
    expect(first.sockets.every((s) => s.destroyed)).toBe(true);
    expect(first.timers.pending()).toBe(0);
    expect(first.outcome).toEqual({});

    const second = race(3);
    second.sockets[0]?.emit('connect');
    second.cancel();
    expect(second.sockets[0]?.destroyed).toBe(false);
  });
});

describe('raceConnect: spare connects shared by every race', () => {
  it('starts no spare past the shared cap, and waits the delay again for one', () => {
    const spares = new SpareConnects(2);
    const a = race(8, spares);
    const b = race(8, spares);
    a.timers.fire();
    a.timers.fire();
    b.timers.fire();
    // a has its first and both spares; b only its first, and waits again for a spare
    expect(a.sockets).toHaveLength(3);
    expect(b.sockets).toHaveLength(1);
    expect(spares.inFlight).toBe(2);
    expect(b.timers.pending()).toBe(1);
    // a connects: its spares are given back, and b's next wait starts one
    a.sockets[2]?.emit('connect');
    expect(spares.inFlight).toBe(0);
    b.timers.fire();
    expect(b.sockets).toHaveLength(2);
    expect(spares.inFlight).toBe(1);
  });

  it('gives its spares back however the race ends: error or cancel', () => {
    const spares = new SpareConnects(8);
    const failed = race(3, spares);
    failed.timers.fire();
    failed.timers.fire();
    expect(spares.inFlight).toBe(2);
    failed.sockets[0]?.emit('error', new Error('refused'));
    expect(spares.inFlight).toBe(0);
    const cancelled = race(3, spares);
    cancelled.timers.fire();
    cancelled.cancel();
    expect(spares.inFlight).toBe(0);
  });
});

describe('raceConnect with real loopback sockets', () => {
  let hole: BlackHole | undefined;
  let server: Server | undefined;
  const opened: Socket[] = [];
  afterEach(() => {
    hole?.close();
    hole = undefined;
    server?.close();
    server = undefined;
    for (const socket of opened.splice(0)) socket.destroy();
  });

  it('races a connect that hangs, and destroys every racer on cancel', async () => {
    hole = await startBlackHole();
    const port = hole.port;
    const timers = manualTimers();
    const cancel = raceConnect(
      () => {
        const socket = connect({ host: '127.0.0.1', port });
        opened.push(socket);
        return socket;
      },
      { connected: () => expect.unreachable(), failed: () => expect.unreachable() },
      { afterMs: 250, max: 3, timers: timers.timers },
    );
    timers.fire();
    timers.fire();
    timers.fire();
    expect(opened).toHaveLength(3);
    cancel();
    expect(opened.every((s) => s.destroyed)).toBe(true);
  });

  it('hands back the socket that connected, open', async () => {
    server = createServer((s) => s.end());
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const winner = await new Promise<Socket>((resolve, reject) => {
      raceConnect<Socket>(
        () => {
          const socket = connect({ host: '127.0.0.1', port });
          opened.push(socket);
          return socket;
        },
        { connected: resolve, failed: reject },
        { afterMs: 250, max: 3, timers: manualTimers().timers },
      );
    });
    expect(winner.remotePort).toBe(port);
    expect(winner.destroyed).toBe(false);
  });
});
