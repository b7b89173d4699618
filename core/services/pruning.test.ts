/**
 * Pruning over a real replay of a small network whose epochs become final by votes: the node rebases onto its
 * own last voted-final state and drops the records before it; its replays give the same checkpoints and state as
 * before; what it keeps still proves its whole chain to a joining node (the prefix records and every link's votes).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { epochBlocks } from '../../shared/ledger/config.ts';
import { DENSE_EPOCHS, followChain, replayPrefix, servedLinks, voterlessPrefix } from '../../shared/ledger/join.ts';
import type { StoredRecord } from '../../shared/ledger/replay.ts';
import { actor, joinableNetwork, smallConfig } from '../../shared/ledger/testing.ts';
import { MemoryLedgerStore } from '../memory-ledger-store.ts';
import { Store } from '../store.ts';
import { FakeConsensusEngine, rowOf } from '../testing/fakes.ts';
import { Pruning } from './pruning.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';

const config = smallConfig();
const T = epochBlocks(config);
const NOW = 10 * T;
let records: StoredRecord[];

beforeAll(async () => {
  ({ records } = await joinableNetwork(config, 9));
});

async function prunedNode(everyEpochs: number, held = records, now = NOW) {
  const store = new MemoryLedgerStore();
  await store.put(held.map((r) => rowOf(r)));
  const engine = new FakeConsensusEngine(store);
  const snapshot = new Store<LedgerSnapshot | null>(await engine.computeLedger(config, now));
  let reloads = 0;
  const me = await actor();
  const pruning = new Pruning(
    { store, snapshot, network: config, clock: { now: () => 0 }, reloadHead: async () => void reloads++, self: me.id },
    { everyEpochs },
  );
  return { store, engine, snapshot, pruning, reloads: () => reloads };
}

describe('pruning', () => {
  it('rebases onto the last voted-final state and drops what came before; replays agree with the full history', async () => {
    const node = await prunedNode(2);
    const before = node.snapshot.get()!;
    const final = before.finalState!.epoch;
    expect(final).toBeGreaterThanOrEqual(5);

    expect(await node.pruning.maybeRebase(before)).toBe(true);
    const kept = await node.store.all();
    expect(kept.every((r) => r.block >= (final + 1) * T)).toBe(true);
    expect(kept.length).toBeLessThan(records.length);
    expect(node.pruning.state.get()).toMatchObject({ baseEpoch: final, rebases: 1, error: null });
    expect(node.reloads()).toBe(1);

    const after = await node.engine.computeLedger(config, NOW);
    expect(after.chain).toEqual(before.chain);
    expect(after.checkpoints).toEqual(before.checkpoints);
    expect([after.lastFinal, after.lastVotedFinal]).toEqual([before.lastFinal, before.lastVotedFinal]);
    expect(after.finalState).toEqual(before.finalState);
    expect(after.balances).toEqual(before.balances);
  });

  it('keeps what proves its chain to a joining node: the voterless prefix and every link’s votes', async () => {
    const node = await prunedNode(2);
    const snapshot = node.snapshot.get()!;
    await node.pruning.maybeRebase(snapshot);
    const base = (await node.store.base())!;
    const stored = (await node.store.all()).filter((r) => r.kind === 'checkpoint').map((r) => r.record);
    const links = servedLinks(config, base.chain, [...base.votes, ...stored]);
    const length = voterlessPrefix(base.chain);
    const prefix = base.prefix.map((record) => records.find((r) => r.record.sig === record.sig)!);
    const start = replayPrefix(config, base.chain, length, prefix);
    if ('error' in start) throw new Error(start.error);
    const walk = await followChain(config, links, start.point, NOW);
    expect(walk.stopped).toBeNull();
    expect(walk.through).toBe(base.epoch);
  });

  it('waits until the final state is far enough past the stored base, and never runs twice at once', async () => {
    const node = await prunedNode(100);
    expect(await node.pruning.maybeRebase(node.snapshot.get())).toBe(false);
    expect(await node.store.count()).toBe(records.length);
    const eager = await prunedNode(1);
    const [a, b] = await Promise.all([
      eager.pruning.maybeRebase(eager.snapshot.get()),
      eager.pruning.maybeRebase(eager.snapshot.get()),
    ]);
    expect([a, b].filter(Boolean)).toHaveLength(1);
  });

  it('keeps a proof that grows with changes of voters, not with age: a long history keeps few links and votes', async () => {
    const long = (await joinableNetwork(config, 30)).records;
    const now = 32 * T;
    const node = await prunedNode(2, long, now);
    const snapshot = node.snapshot.get()!;
    expect(await node.pruning.maybeRebase(snapshot)).toBe(true);
    const base = (await node.store.base())!;
    // The same two validators vote on every epoch: the prefix, one link proven by the first voters, the window.
    expect(base.epoch).toBeGreaterThan(DENSE_EPOCHS + 4);
    expect(base.chain.length).toBeLessThanOrEqual(DENSE_EPOCHS + 2);
    const everyVote = long.filter((r) => r.record.kind === 'checkpoint' && r.record.body.epoch <= base.epoch);
    expect(base.votes.length).toBeLessThan(everyVote.length);
    // What it keeps, with the votes still in its store, proves its base to a joining node.
    const stored = (await node.store.all()).filter((r) => r.kind === 'checkpoint').map((r) => r.record);
    const links = servedLinks(config, base.chain, [...base.votes, ...stored]);
    const prefix = base.prefix.map((record) => long.find((r) => r.record.sig === record.sig)!);
    const start = replayPrefix(config, base.chain, voterlessPrefix(base.chain), prefix);
    if ('error' in start) throw new Error(start.error);
    const walk = await followChain(config, links, start.point, now);
    expect([walk.stopped, walk.through]).toEqual([null, base.epoch]);
    // Its replays from the thin base agree with the full history's.
    const after = await node.engine.computeLedger(config, now);
    expect(after.balances).toEqual(snapshot.balances);
    expect(after.lastVotedFinal).toBe(snapshot.lastVotedFinal);
    expect(after.chain.at(-1)).toEqual(snapshot.chain.at(-1));
  }, 30_000);
});
