/**
 * A typed, observable value: what a service publishes about itself and what pages render. `set` and `update`
 * notify subscribers only when the value changes (by identity), so a page re-renders when, and only when,
 * something it shows changed. Shaped for React's useSyncExternalStore (`get` returns a stable snapshot).
 */
export type Listener<T> = (value: T) => void;

export interface ReadableStore<T> {
  get(): T;
  /** Call `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: Listener<T>): () => void;
}

export class Store<T> implements ReadableStore<T> {
  private readonly listeners = new Set<Listener<T>>();

  constructor(private value: T) {}

  get(): T {
    return this.value;
  }

  set(value: T): void {
    if (Object.is(value, this.value)) return;
    this.value = value;
    for (const listener of [...this.listeners]) listener(value);
  }

  /** Shallow-merge `patch` into an object value. */
  update(this: Store<T & object>, patch: Partial<T>): void {
    this.set({ ...this.value, ...patch });
  }

  subscribe(listener: Listener<T>): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** Resolve with the first value of `store` that satisfies `test` (now or later); rejects when `signal` aborts. */
export function waitFor<T>(store: ReadableStore<T>, test: (value: T) => boolean, signal?: AbortSignal): Promise<T> {
  const now = store.get();
  if (test(now)) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const stop = store.subscribe((value) => {
      if (!test(value)) return;
      stop();
      resolve(value);
    });
    signal?.addEventListener(
      'abort',
      () => {
        stop();
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
