/**
 * `work`, or a rejection with `message` once `signal` aborts, whichever comes first: for calls that take a signal
 * but may not honour it (a libp2p dial), so that a caller waiting on them is never held past its deadline.
 */
export function boundedBy<T>(work: Promise<T>, signal: AbortSignal, message: string): Promise<T> {
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      if (signal.aborted) reject(new Error(message));
      else signal.addEventListener('abort', () => reject(new Error(message)), { once: true });
    }),
  ]);
}
