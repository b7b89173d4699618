/** Progress bars: drawn on a terminal for model loading and the proof of work; nothing at all on a pipe. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { idleMiner, type MinerState } from '../services/miner.ts';
import type { RegistrationState } from '../services/registration.ts';
import { Store } from '../store.ts';
import { showProgress } from './progress.ts';

function terminal(isTTY: boolean) {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(stream, { isTTY, columns: 120, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
  return { stream, text: () => text };
}

const miner = (over: Partial<MinerState>): MinerState => ({ ...idleMiner, model: 'webtensor/tiny-llama', ...over });

describe('showProgress', () => {
  it('draws a bar while the model is checked and loaded, and one for the proof of work, then removes them', async () => {
    const t = terminal(true);
    const m = new Store<MinerState>(miner({}));
    const r = new Store<RegistrationState | null>(null);
    const stop = showProgress({ miner: m, registration: r }, t.stream);
    m.set(miner({ phase: 'verifying', progress: { loaded: 512 * 1024, total: 1024 * 1024 } }));
    r.set({ netuid: 1, phase: 'hashing', hashes: 300, expected: 1024, uid: null, error: null, maxBurn: null });
    await new Promise((resolve) => setTimeout(resolve, 150)); // cli-progress redraws on a timer
    expect(t.text()).toMatch(/model \[.*\] 50% verifying webtensor\/tiny-llama/);
    expect(t.text()).toMatch(/register \[.*\] 29% proof of work, subnet 1/);
    m.set(miner({ phase: 'ready', ready: true }));
    r.set({ netuid: 1, phase: 'registered', hashes: 1100, expected: 1024, uid: 3, error: null, maxBurn: null });
    stop();
  });

  it('writes nothing when stderr is not a terminal (logs go to files and supervisors)', () => {
    const t = terminal(false);
    const m = new Store<MinerState>(miner({}));
    const stop = showProgress({ miner: m }, t.stream);
    m.set(miner({ phase: 'loading', progress: { loaded: 1, total: 2 } }));
    stop();
    expect(t.text()).toBe('');
  });
});
