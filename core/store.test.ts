/** The typed store every service publishes and every page renders: change-only notifications and waitFor. */
import { describe, expect, it } from 'vitest';
import { Store, waitFor } from './store.ts';

describe('Store', () => {
  it('notifies subscribers when set changes the value, and not when it sets the same value', () => {
    const store = new Store(1);
    const seen: number[] = [];
    store.subscribe((v) => seen.push(v));
    store.set(2);
    store.set(2);
    store.set(3);
    expect(seen).toEqual([2, 3]);
    expect(store.get()).toBe(3);
  });

  it('compares by identity: an equal but new object is a change', () => {
    const store = new Store({ n: 1 });
    let calls = 0;
    store.subscribe(() => calls++);
    store.set(store.get());
    store.set({ n: 1 });
    expect(calls).toBe(1);
  });

  it('update merges a patch into the value and notifies with the merged value', () => {
    const store = new Store({ a: 1, b: 'x' });
    const seen: { a: number; b: string }[] = [];
    store.subscribe((v) => seen.push(v));
    store.update({ a: 2 });
    expect(store.get()).toEqual({ a: 2, b: 'x' });
    expect(seen).toEqual([{ a: 2, b: 'x' }]);
  });

  it('keeps the same snapshot between changes, as useSyncExternalStore requires', () => {
    const store = new Store({ a: 1 });
    expect(store.get()).toBe(store.get());
    store.update({ a: 2 });
    const after = store.get();
    expect(store.get()).toBe(after);
  });

  it('stops calling a listener once it unsubscribed, and keeps calling the others', () => {
    const store = new Store(0);
    const first: number[] = [];
    const second: number[] = [];
    const stop = store.subscribe((v) => first.push(v));
    store.subscribe((v) => second.push(v));
    store.set(1);
    stop();
    store.set(2);
    expect(first).toEqual([1]);
    expect(second).toEqual([1, 2]);
  });

  it('lets a listener unsubscribe itself while being notified without skipping the others', () => {
    const store = new Store(0);
    const seen: string[] = [];
    const stop = store.subscribe(() => {
      seen.push('once');
      stop();
    });
    store.subscribe(() => seen.push('always'));
    store.set(1);
    store.set(2);
    expect(seen).toEqual(['once', 'always', 'always']);
  });
});

describe('waitFor', () => {
  it('resolves at once with the current value when it already satisfies the test', async () => {
    const store = new Store(5);
    await expect(waitFor(store, (v) => v > 3)).resolves.toBe(5);
  });

  it('resolves with the first later value that satisfies the test, and then stops listening', async () => {
    const store = new Store(0);
    const waiting = waitFor(store, (v) => v >= 2);
    store.set(1);
    store.set(2);
    store.set(3);
    await expect(waiting).resolves.toBe(2);
    // The waiter unsubscribed: a store with no listeners left behaves as before.
    let calls = 0;
    store.subscribe(() => calls++);
    store.set(4);
    expect(calls).toBe(1);
  });

  it('rejects with the signal’s reason when the signal aborts first', async () => {
    const store = new Store(0);
    const abort = new AbortController();
    const waiting = waitFor(store, (v) => v > 0, abort.signal);
    abort.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow('gave up');
    // A value arriving after the abort changes nothing.
    store.set(1);
    await expect(waiting).rejects.toThrow('gave up');
  });
});
