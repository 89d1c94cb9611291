import { describe, expect, it } from 'vitest';
import { fireNext, manualClock } from '../helpers/clock.ts';

describe('manual clock', () => {
  it('moves now only when advanced', async () => {
    const clock = manualClock(1_000);
    expect(clock.now()).toBe(1_000);
    await clock.advance(250);
    expect(clock.now()).toBe(1_250);
  });

  it('fires timers in due order, ties in arming order, with now at each one’s time', async () => {
    const clock = manualClock(0);
    const fired: string[] = [];
    const at = (name: string) => () => fired.push(`${name}@${clock.now()}`);
    clock.timers.set(at('c'), 300);
    clock.timers.set(at('a'), 100);
    clock.timers.set(at('b1'), 200);
    clock.timers.set(at('b2'), 200);
    await clock.advance(250);
    expect(fired).toEqual(['a@100', 'b1@200', 'b2@200']);
    expect(clock.now()).toBe(250);
    expect(clock.armed).toBe(1);
    expect(clock.nextDueInMs()).toBe(50);
    await clock.advance(50);
    expect(fired).toEqual(['a@100', 'b1@200', 'b2@200', 'c@300']);
    expect(clock.nextDueInMs()).toBeUndefined();
  });

  it('fires each timer in a turn of its own, so what one started can run before the next', async () => {
    const clock = manualClock(0);
    const order: string[] = [];
    clock.timers.set(() => {
      order.push('first');
      setImmediate(() => order.push('io after first'));
    }, 10);
    clock.timers.set(() => order.push('second'), 20);
    await clock.advance(20);
    expect(order).toEqual(['first', 'io after first', 'second']);
  });

  it('fires a timer armed by another timer when it falls within the same advance', async () => {
    const clock = manualClock(0);
    const fired: number[] = [];
    clock.timers.set(() => {
      fired.push(clock.now());
      clock.timers.set(() => fired.push(clock.now()), 30);
    }, 10);
    await clock.advance(100);
    expect(fired).toEqual([10, 40]);
    expect(clock.now()).toBe(100);
  });

  it('does not fire a cleared timer', async () => {
    const clock = manualClock(0);
    let fired = false;
    const timer = clock.timers.set(() => {
      fired = true;
    }, 10);
    clock.timers.clear(timer);
    clock.timers.clear(undefined);
    await clock.advance(100);
    expect(fired).toBe(false);
    expect(clock.armed).toBe(0);
  });

  it('refresh re-arms for the full delay from now; a cleared timer stays cleared', async () => {
    const clock = manualClock(0);
    const fired: number[] = [];
    const timer = clock.timers.set(() => fired.push(clock.now()), 100);
    await clock.advance(60);
    timer.refresh();
    await clock.advance(60);
    expect(fired).toEqual([]);
    await clock.advance(40);
    expect(fired).toEqual([160]);
    // a fired timer refreshed runs again, as a real one does
    timer.refresh();
    await clock.advance(100);
    expect(fired).toEqual([160, 260]);
    clock.timers.clear(timer);
    timer.refresh();
    await clock.advance(1_000);
    expect(fired).toEqual([160, 260]);
  });

  it('fires a zero-delay timer on advance(0), never on its own', async () => {
    const clock = manualClock(0);
    let fired = false;
    clock.timers.set(() => {
      fired = true;
    }, 0);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(fired).toBe(false);
    await clock.advance(0);
    expect(fired).toBe(true);
  });
});

describe('manual clock: what a test waits on', () => {
  it('counts the timers armed for a given delay, until they fire or are cleared', async () => {
    const clock = manualClock(0);
    const a = clock.timers.set(() => {}, 200);
    clock.timers.set(() => {}, 200);
    clock.timers.set(() => {}, 3_000);
    expect(clock.armedFor(200)).toBe(2);
    expect(clock.armedFor(3_000)).toBe(1);
    expect(clock.armedFor(100)).toBe(0);
    clock.timers.clear(a);
    expect(clock.armedFor(200)).toBe(1);
    await clock.advance(200);
    expect(clock.armedFor(200)).toBe(0);
  });

  it('fires the next timer once one is armed within the bound, and not a later one', async () => {
    const clock = manualClock(0);
    const fired: string[] = [];
    clock.timers.set(() => fired.push('late'), 1_000);
    setImmediate(() => clock.timers.set(() => fired.push('back-off'), 4));
    await fireNext(clock, 5);
    expect(fired).toEqual(['back-off']);
    expect(clock.now()).toBe(4);
  });
});
