/**
 * A miner's work queue: one inference at a time (the model and its seeded RNG are per worker), at most
 * `capacity` requests waiting or running, and a clear "busy" refusal beyond that. A request whose caller
 * cancels while it waits leaves the queue without running; one that is running is told through its signal.
 */
import { RpcError } from '../p2p/messages.ts';

interface Waiting {
  start: () => void;
}

export class InferenceQueue {
  private running = false;
  private readonly waiting: Waiting[] = [];

  constructor(
    readonly capacity: number,
    private readonly onDepth: (depth: number) => void = () => {},
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('queue capacity must be a positive integer');
  }

  /** Requests waiting plus the one running. */
  get depth(): number {
    return this.waiting.length + (this.running ? 1 : 0);
  }

  /** Run `task` when its turn comes; resolves with its value and how long it waited (ms). */
  async run<T>(signal: AbortSignal, task: () => Promise<T>): Promise<{ value: T; queuedMs: number }> {
    if (this.depth >= this.capacity)
      throw new RpcError('busy', `this miner is busy: ${this.depth} requests are queued; try another miner`);
    if (signal.aborted) throw new RpcError('cancelled', 'the request was cancelled before it ran');
    const queuedAt = performance.now();
    // The turn passes straight from the finishing request to the next one, so nothing can slip in between.
    if (this.running) await this.waitForTurn(signal);
    else this.running = true;
    this.onDepth(this.depth);
    const queuedMs = performance.now() - queuedAt;
    try {
      return { value: await task(), queuedMs };
    } finally {
      const next = this.waiting.shift();
      if (next) next.start();
      else this.running = false;
      this.onDepth(this.depth);
    }
  }

  private waitForTurn(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const entry: Waiting = {
        start: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        this.onDepth(this.depth);
        reject(new RpcError('cancelled', 'the request was cancelled while it waited'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
      this.onDepth(this.depth);
    });
  }
}
