import { describe, expect, it } from 'vitest';
import { RpcError } from '../p2p/messages.ts';
import { InferenceQueue } from './queue.ts';

const never = () => new AbortController().signal;

describe('InferenceQueue', () => {
  it('runs one task at a time, in arrival order', async () => {
    const q = new InferenceQueue(4);
    const log: string[] = [];
    let active = 0;
    const task = (name: string) => async () => {
      active++;
      expect(active).toBe(1);
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, 5));
      log.push(`end ${name}`);
      active--;
      return name;
    };
    const results = await Promise.all(['a', 'b', 'c'].map((n) => q.run(never(), task(n))));
    expect(results.map((r) => r.value)).toEqual(['a', 'b', 'c']);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(results[2]!.queuedMs).toBeGreaterThan(0);
    expect(q.depth).toBe(0);
  });

  it('answers busy beyond its capacity, and changes nothing for the others', async () => {
    const q = new InferenceQueue(2);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = q.run(never(), () => gate.then(() => 1));
    const second = q.run(never(), async () => 2);
    const third = q.run(never(), async () => 3);
    await expect(third).rejects.toMatchObject({ code: 'busy' });
    expect(q.depth).toBe(2);
    release();
    expect((await first).value).toBe(1);
    expect((await second).value).toBe(2);
  });

  it('drops a waiting request whose caller cancels, without running it', async () => {
    const depths: number[] = [];
    const q = new InferenceQueue(3, (d) => depths.push(d));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = q.run(never(), () => gate);
    const cancel = new AbortController();
    let ran = false;
    const second = q.run(cancel.signal, async () => void (ran = true));
    cancel.abort();
    await expect(second).rejects.toBeInstanceOf(RpcError);
    await expect(second).rejects.toMatchObject({ code: 'cancelled' });
    expect(q.depth).toBe(1);
    release();
    await first;
    expect(ran).toBe(false);
    expect(q.depth).toBe(0);
    expect(depths.at(-1)).toBe(0);
  });

  it('keeps serving after a task fails', async () => {
    const q = new InferenceQueue(2);
    await expect(q.run(never(), () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect((await q.run(never(), async () => 'ok')).value).toBe('ok');
  });
});
