/** The dialer: who dials whom, how many at once, and what happens to a dial that fails or hangs. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { deferred, settle, type Deferred } from '../testing/fakes.ts';
import { Dialer, type DialerOptions } from './dialer.ts';

/** A dial function whose every call waits until the test settles it. */
function controlledDials() {
  const calls: { peer: string; signal: AbortSignal; result: Deferred<void> }[] = [];
  const dial = (peer: string, signal: AbortSignal) => {
    const result = deferred();
    calls.push({ peer, signal, result });
    return result.promise;
  };
  const peers = () => calls.map((c) => c.peer);
  const call = (peer: string) => calls.filter((c) => c.peer === peer).at(-1)!;
  return { calls, dial, peers, call };
}

function dialer(over: Partial<DialerOptions> & Pick<DialerOptions, 'dial'>) {
  return new Dialer({ self: 'm', isConnected: () => false, ...over });
}

describe('Dialer', () => {
  it('dials only the peers with a higher id than its own, never itself', () => {
    const d = controlledDials();
    dialer({ dial: d.dial }).offer(['a', 'm', 'x', 'z']);
    expect(d.peers()).toEqual(['x', 'z']);
  });

  it('stops dialling at its target number of peers, counting dials in flight', () => {
    const d = controlledDials();
    const dd = dialer({ dial: d.dial, targetPeers: 5, connectedCount: () => 3 });
    dd.offer(['n', 'o', 'p', 'q']);
    expect(d.peers()).toEqual(['n', 'o']); // 3 connected + 2 dialling = 5
    dd.offer(['n', 'o', 'p', 'q']);
    expect(d.peers()).toEqual(['n', 'o']);
  });

  it('with fewer than three peers, dials whoever is listed, whose turn it is or not', () => {
    const d = controlledDials();
    let connected = 0;
    const dd = dialer({ dial: d.dial, targetPeers: 10, connectedCount: () => connected });
    dd.offer(['a', 'b']);
    expect(d.peers()).toEqual(['a', 'b']);
    const e = controlledDials();
    connected = 3;
    dialer({ dial: e.dial, targetPeers: 10, connectedCount: () => connected }).offer(['a', 'b']);
    expect(e.peers()).toEqual([]); // not starving: 'a' and 'b' dial 'm' (lower ids dial)
  });

  it('follows shouldDial instead of the id order when one is given', () => {
    const d = controlledDials();
    dialer({ dial: d.dial, shouldDial: (peer) => peer === 'a' }).offer(['a', 'x', 'm']);
    expect(d.peers()).toEqual(['a']);
  });

  it('dials a peer whose turn it is after all, once it stayed unconnected for the fallback time', () => {
    const d = controlledDials();
    let now = 1000;
    const dd = dialer({ dial: d.dial, fallbackMs: 20_000, now: () => now });
    dd.offer(['a']); // 'a' < 'm': a's turn
    now += 19_999;
    dd.offer(['a']);
    expect(d.peers()).toEqual([]);
    now += 1;
    dd.offer(['a']);
    expect(d.peers()).toEqual(['a']);
  });

  it('restarts the fallback clock when a peer connects or leaves the list', () => {
    const d = controlledDials();
    let now = 0;
    let connected = false;
    const dd = dialer({ dial: d.dial, fallbackMs: 100, now: () => now, isConnected: () => connected });
    dd.offer(['a']);
    now = 90;
    connected = true;
    dd.offer(['a']);
    connected = false;
    now = 150;
    dd.offer(['a']); // unconnected again since 150
    expect(d.peers()).toEqual([]);
    dd.offer([]); // gone from the list
    now = 240;
    dd.offer(['a']);
    expect(d.peers()).toEqual([]);
    now = 340;
    dd.offer(['a']);
    expect(d.peers()).toEqual(['a']);
  });

  it('skips peers already connected, already being dialled or already queued', () => {
    const d = controlledDials();
    const dd = dialer({ dial: d.dial, isConnected: (peer) => peer === 'n', concurrency: 1 });
    dd.offer(['n', 'o', 'p']);
    dd.offer(['o', 'p']);
    expect(d.peers()).toEqual(['o']);
    expect(dd.describe()).toMatchObject({ inFlight: 1, queued: 1 });
  });

  it('runs at most `concurrency` dials at once and starts the next when one finishes', async () => {
    const d = controlledDials();
    const dd = dialer({ dial: d.dial, concurrency: 2 });
    dd.offer(['n', 'o', 'p', 'q']);
    expect(d.peers()).toEqual(['n', 'o']);
    expect(dd.describe()).toMatchObject({ inFlight: 2, queued: 2 });

    d.call('n').result.resolve();
    await settle();
    expect(d.peers()).toEqual(['n', 'o', 'p']);
    expect(dd.describe()).toMatchObject({ inFlight: 2, queued: 1 });

    d.call('o').result.reject(new Error('refused'));
    await settle();
    expect(d.peers()).toEqual(['n', 'o', 'p', 'q']);
    expect(dd.describe()).toMatchObject({ inFlight: 2, queued: 0, failures: 1 });
  });

  it('frees the slot of a dial that hangs past its timeout, aborting its signal', async () => {
    const d = controlledDials();
    const secondDial = deferred();
    const dd = dialer({
      concurrency: 1,
      timeoutMs: 5,
      dial: (peer, signal) => {
        if (peer === 'o') secondDial.resolve();
        // Ignores its signal and never settles.
        return d.dial(peer, signal);
      },
    });
    dd.offer(['n', 'o']);
    expect(d.peers()).toEqual(['n']);
    await secondDial.promise;
    expect(d.call('n').signal.aborted).toBe(true);
    expect(dd.describe()).toMatchObject({ inFlight: 1, queued: 0, failures: 1, backingOff: 1 });
  });

  it('backs off a peer after a failed dial, doubling the wait on every further failure', async () => {
    const d = controlledDials();
    let now = 1_000_000;
    const dd = dialer({ dial: d.dial, now: () => now });

    dd.offer(['n']);
    d.call('n').result.reject(new Error('unreachable'));
    await settle();
    expect(dd.describe()).toMatchObject({ inFlight: 0, backingOff: 1, failures: 1 });

    // First failure: 1 s of backoff.
    now += 999;
    dd.offer(['n']);
    expect(d.calls).toHaveLength(1);
    now += 1;
    dd.offer(['n']);
    expect(d.calls).toHaveLength(2);

    // Second failure: 2 s.
    d.call('n').result.reject(new Error('unreachable'));
    await settle();
    now += 1999;
    dd.offer(['n']);
    expect(d.calls).toHaveLength(2);
    now += 1;
    dd.offer(['n']);
    expect(d.calls).toHaveLength(3);

    // A success forgets the backoff.
    d.call('n').result.resolve();
    await settle();
    expect(dd.describe()).toMatchObject({ inFlight: 0, backingOff: 0, failures: 2 });
  });

  it('does not hold back other peers while one backs off', async () => {
    const d = controlledDials();
    const dd = dialer({ dial: d.dial, now: () => 0 });
    dd.offer(['n']);
    d.call('n').result.reject(new Error('unreachable'));
    await settle();
    dd.offer(['n', 'o']);
    expect(d.peers()).toEqual(['n', 'o']);
  });

  describe('dial-rate cap', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('starts at most maxDials dials per window, however many peers are listed and slots are free', async () => {
      vi.useFakeTimers();
      const d = controlledDials();
      const dd = dialer({ dial: d.dial, concurrency: 100, maxDials: 4, dialWindowMs: 10_000 });
      const listed = Array.from({ length: 10 }, (_, k) => `n${k}`);
      dd.offer(listed);
      expect(d.peers()).toEqual(['n0', 'n1', 'n2', 'n3']);
      expect(dd.describe()).toMatchObject({ inFlight: 4, queued: 6, rateLimited: 1 });

      // Failed dials free their slots, but not the window: nothing more starts before it ends, although the
      // failed peers' backoff is over and they are queued again.
      for (const peer of d.peers()) d.call(peer).result.reject(new Error('unreachable'));
      await vi.advanceTimersByTimeAsync(9_999);
      dd.offer(listed);
      expect(d.calls).toHaveLength(4);
      expect(dd.describe()).toMatchObject({ inFlight: 0, queued: 10 });

      // Each window starts four more, in queue order.
      await vi.advanceTimersByTimeAsync(2);
      expect(d.peers().slice(4)).toEqual(['n4', 'n5', 'n6', 'n7']);
      await vi.advanceTimersByTimeAsync(10_000);
      expect(d.peers().slice(8)).toEqual(['n8', 'n9', 'n0', 'n1']);
    });

    it('drops a queued peer that connected while it waited for the next window', async () => {
      vi.useFakeTimers();
      const d = controlledDials();
      const connected = new Set<string>();
      const dd = dialer({
        dial: d.dial,
        concurrency: 100,
        maxDials: 1,
        dialWindowMs: 1000,
        isConnected: (p) => connected.has(p),
      });
      dd.offer(['n', 'o', 'p']);
      expect(d.peers()).toEqual(['n']);
      connected.add('o'); // 'o' dialled this node meanwhile
      await vi.advanceTimersByTimeAsync(1001);
      expect(d.peers()).toEqual(['n', 'p']);
      expect(dd.describe()).toMatchObject({ queued: 0 });
    });

    it('stop() forgets the queue and the wait for the next window', async () => {
      vi.useFakeTimers();
      const d = controlledDials();
      const dd = dialer({ dial: d.dial, concurrency: 100, maxDials: 1, dialWindowMs: 1000 });
      dd.offer(['n', 'o']);
      dd.stop();
      await vi.advanceTimersByTimeAsync(5000);
      expect(d.peers()).toEqual(['n']);
      expect(vi.getTimerCount()).toBe(0);
    });
  });
});
