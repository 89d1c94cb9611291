import { describe, expect, it } from 'vitest';
import type { BudgetSettings } from '../../src/config/types.ts';
import { RetryBudget } from '../../src/resilience/retry-budget.ts';

const ratioOnly: BudgetSettings = { ratio: 0.2, minPerSecond: 0, windowMs: 10_000 };

function withdrawAll(budget: RetryBudget, nowMs: number): number {
  let n = 0;
  while (budget.tryWithdraw(nowMs)) n++;
  return n;
}

describe('RetryBudget', () => {
  it('allows retries up to ratio * first tries and refuses the next one', () => {
    const budget = new RetryBudget(ratioOnly);
    for (let i = 0; i < 10; i++) budget.deposit(0);
    expect(budget.tryWithdraw(0)).toBe(true);
    expect(budget.tryWithdraw(0)).toBe(true);
    expect(budget.tryWithdraw(0)).toBe(false);
  });

  it('refuses a retry while retries + 1 would exceed the allowance', () => {
    const budget = new RetryBudget(ratioOnly);
    for (let i = 0; i < 9; i++) budget.deposit(0);
    // 0.2 * 9 = 1.8: one retry, not two
    expect(withdrawAll(budget, 0)).toBe(1);
  });

  it('refuses every retry with no first tries and no minPerSecond', () => {
    expect(new RetryBudget(ratioOnly).tryWithdraw(0)).toBe(false);
  });

  it('allows minPerSecond * window seconds retries with no first tries', () => {
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 1, windowMs: 10_000 });
    expect(budget.available(0)).toBe(10);
    expect(withdrawAll(budget, 0)).toBe(10);
  });

  it('adds the ratio allowance on top of the minPerSecond floor', () => {
    const budget = new RetryBudget({ ratio: 0.5, minPerSecond: 1, windowMs: 2_000 });
    for (let i = 0; i < 4; i++) budget.deposit(0);
    expect(withdrawAll(budget, 0)).toBe(4);
  });

  it('counts a retry at once, before its backoff ends', () => {
    const budget = new RetryBudget(ratioOnly);
    for (let i = 0; i < 5; i++) budget.deposit(0);
    expect(budget.tryWithdraw(0)).toBe(true);
    expect(budget.available(0)).toBe(0);
    expect(budget.tryWithdraw(1)).toBe(false);
  });

  it('does not lose a retry to floating point (0.29 * 100)', () => {
    const budget = new RetryBudget({ ratio: 0.29, minPerSecond: 0, windowMs: 10_000 });
    for (let i = 0; i < 100; i++) budget.deposit(0);
    expect(withdrawAll(budget, 0)).toBe(29);
  });

  it('reports available as the floor of the headroom, never below 0', () => {
    const budget = new RetryBudget(ratioOnly);
    for (let i = 0; i < 14; i++) budget.deposit(0);
    expect(budget.available(0)).toBe(2);
    withdrawAll(budget, 0);
    expect(budget.available(0)).toBe(0);
  });

  it('forgets first tries and retries once they leave the window', () => {
    const budget = new RetryBudget(ratioOnly);
    for (let i = 0; i < 10; i++) budget.deposit(0);
    expect(withdrawAll(budget, 0)).toBe(2);
    for (let i = 0; i < 10; i++) budget.deposit(5_000);
    // the deposits at 0 still count: 20 first tries, 2 retries
    expect(withdrawAll(budget, 5_000)).toBe(2);
    // at 10s the first batch and its retries are gone: 10 first tries, 2 retries
    expect(budget.available(10_000)).toBe(0);
    // at 15s everything is gone
    expect(budget.available(15_000)).toBe(0);
    for (let i = 0; i < 5; i++) budget.deposit(15_000);
    expect(budget.available(15_000)).toBe(1);
  });

  it('lets retries return when the window slides past earlier retries', () => {
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 1, windowMs: 5_000 });
    expect(withdrawAll(budget, 0)).toBe(5);
    expect(budget.tryWithdraw(4_999)).toBe(false);
    expect(budget.available(5_000)).toBe(5);
  });
});
