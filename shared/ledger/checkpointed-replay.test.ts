/**
 * Checkpointed replay against a replay from genesis: as a network's history grows block by block, a node that
 * continues each replay from its last voted-final state reaches exactly the same checkpoints, state and
 * finality, reads only the records after that state, and starts over for another network.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { epochBlocks } from './config.ts';
import { CheckpointedReplay, type ReplaySource } from './checkpointed-replay.ts';
import { replay, type StoredRecord } from './replay.ts';
import { stateText } from './state-text.ts';
import { joinableNetwork, smallConfig } from './testing.ts';

const config = smallConfig();
const T = epochBlocks(config);
let records: StoredRecord[];

beforeAll(async () => {
  ({ records } = await joinableNetwork(config, 9));
});

const sourceOf = (held: readonly StoredRecord[]): ReplaySource => ({
  recordsFrom: async (block) => held.filter((r) => r.record.block >= block),
  joinedBase: async () => null,
});

describe('checkpointed replay', () => {
  it('matches a replay from genesis at every step, reading only what follows its last final state', async () => {
    const replays = new CheckpointedReplay();
    let lastStart = -1;
    for (let now = T; now <= 10 * T; now += 7) {
      const held = records.filter((r) => r.record.block < now);
      const full = replay(config, held, now);
      const { result, replayed, startedAfter } = await replays.run(config, sourceOf(held), now);
      expect(result.chain).toEqual(full.chain);
      expect(stateText(result.state)).toBe(stateText(full.state));
      expect([result.lastFinal, result.lastVotedFinal]).toEqual([full.lastFinal, full.lastVotedFinal]);
      expect(result.checkpoints).toEqual(full.checkpoints);
      expect(result.epochs).toEqual(full.epochs);
      expect(result.baseEpoch).toBe(-1); // what the store starts from, not where this replay started
      expect(replayed).toBe(held.filter((r) => r.record.block >= (startedAfter + 1) * T).length);
      expect(startedAfter).toBeGreaterThanOrEqual(lastStart);
      lastStart = startedAfter;
    }
    // By the end, replays start after a final epoch and read a fraction of the history.
    expect(lastStart).toBeGreaterThanOrEqual(5);
  });

  it('starts over for another network config', async () => {
    const replays = new CheckpointedReplay();
    await replays.run(config, sourceOf(records), 10 * T);
    expect(replays.baseEpoch).toBeGreaterThanOrEqual(5);
    const other = { ...config, genesisMs: config.genesisMs + 1 };
    const { startedAfter } = await replays.run(other, sourceOf([]), 10 * T);
    expect(startedAfter).toBe(-1);
  });
});
