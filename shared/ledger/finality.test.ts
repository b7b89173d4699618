/**
 * THREATS.md findings 1-3 as attacks on the ledger, and the rules that stop them: author chains, the gossip
 * window, final checkpoints and their adoption. Each attack is played out in full, then the victim's position is
 * checked: the first payment stands, the copier's weights count for nothing, the honest miner keeps its UID.
 */
import { describe, expect, it } from 'vitest';
import { epochBlocks } from './config.ts';
import { adoption, arrivalContext, checkpointIds, recordsRootOf } from './finality.ts';
import { checkRecord, RecordRefused } from './records.ts';
import { MAX_TALLIES, replay, type StoredRecord } from './replay.ts';
import { uidOf, weightsCommitHash } from './state.ts';
import { actor, claim, honestEpochs, make, registration, smallConfig, votes, type Actor } from './testing.ts';

const config = smallConfig();
const T = epochBlocks(config); // 20

/** Two validators with permits from epoch 1, one miner, and honest epochs 1..3 (epochs 0-2 final by block 64). */
/** A miner and two staked validators; registrations bind to `cfg`'s genesis (another config is another network). */
async function network(cfg = config) {
  const miner = await actor();
  const [v1, v2] = [await actor(), await actor()];
  const records: StoredRecord[] = [await registration(cfg, miner, 1, 'miner')];
  for (const [k, v] of [v1, v2].entries()) {
    records.push(await registration(cfg, v, 2 + k, 'validator'));
    records.push(await claim(config, v, 4, 1_000_000_000_000n));
    records.push(await make(config, v, 'stake.add', 5, { hotkey: v.id, amount: '1000000000000' }));
  }
  return { miner, validators: [v1, v2] as [Actor, Actor], records };
}

/** How a node at `nowBlock` that knows `lastFinal` treats a record arriving by `via`. */
async function arrival(raw: StoredRecord, nowBlock: number, lastFinal: number, via: 'gossip' | 'sync') {
  try {
    await checkRecord(raw.record, config, arrivalContext(config, nowBlock, lastFinal, via));
    return 'accepted';
  } catch (err) {
    if (err instanceof RecordRefused) return err.code;
    throw err;
  }
}

/** What a node that holds `held` does once it sees an epoch final under roots other than its own: adopt. */
function adopt(held: StoredRecord[], honest: StoredRecord[], epoch: number): StoredRecord[] {
  const reference = replay(config, honest, (epoch + 2) * T);
  const ids = checkpointIds(config, honest, reference.refused, epoch);
  expect(recordsRootOf(ids)).toBe(reference.checkpoints.find((c) => c.epoch === epoch)!.recordsRoot);
  const { drop, missing } = adoption(config, held, epoch, ids);
  const byId = new Map(honest.map((r) => [r.id, r]));
  return [...held.filter((r) => !drop.includes(r.id)), ...missing.map((id) => byId.get(id)!)];
}

describe('finding 1: a signer cannot pay, wait, then sign an earlier record spending the same funds', () => {
  it('the first payment stands once final; the backdated one is refused on arrival and dropped on adoption', async () => {
    const net = await network();
    const [alice, x, y] = [await actor(), await actor(), await actor()];
    let records = [...net.records, await claim(config, alice, 3, 100n)];
    const payX = await make(config, alice, 'transfer', 25, { to: x.id, amount: '100' }); // epoch 1
    records.push(payX);
    records = await honestEpochs(config, records, net.validators, 1, 3, [0], () => [65535]);
    const honest = replay(config, records, 64);
    expect(honest.lastFinal).toBeGreaterThanOrEqual(1);
    expect(honest.state.balances[x.id]).toBe(100n);

    // The attack: at block 52 Alice signs sequence 2 again, paying Y, dated before her payment to X.
    const backdated = await make(config, alice, 'transfer', 24, { to: y.id, amount: '100' }, 2);
    expect(await arrival(backdated, 52, honest.lastVotedFinal, 'gossip')).toBe('final');
    expect(await arrival(backdated, 52, honest.lastVotedFinal, 'sync')).toBe('final');
    // A record dated before her last one is refused by her chain, whatever its sequence number: replay goes in
    // block order, so it comes before the record it claims to follow.
    const later = await make(config, alice, 'transfer', 24, { to: y.id, amount: '100' }, 3);
    expect(replay(config, [...records, later], 64).refused[later.id]?.code).toBe('sequence-gap');

    // Had a node stored it anyway (before it knew epoch 1 final), its roots for epoch 1 differ from the votes:
    const fooled = replay(config, [...records, backdated], 64);
    expect(fooled.state.balances[x.id] ?? 0n).toBe(0n);
    const other = fooled.checkpoints.find((c) => c.epoch === 1)!;
    expect(other.final).toBe(false);
    expect(BigInt(other.otherVotes[0]!.stake) * 3n).toBeGreaterThan(BigInt(other.permittedStake) * 2n);
    // ... so it adopts the final checkpoint, and the first payment stands.
    const adopted = replay(config, adopt([...records, backdated], records, 1), 64);
    expect(adopted.state.balances[x.id]).toBe(100n);
    expect(adopted.state.balances[y.id] ?? 0n).toBe(0n);
    expect(adopted.checkpoints.filter((c) => c.final)).toEqual(honest.checkpoints.filter((c) => c.final));
  });

  it('an equivocation in an open epoch freezes the author; a final payment is never undone', async () => {
    const net = await network();
    const [alice, x, y] = [await actor(), await actor(), await actor()];
    let records = [...net.records, await claim(config, alice, 3, 100n)];
    records.push(await make(config, alice, 'transfer', 25, { to: x.id, amount: '60' }));
    records = await honestEpochs(config, records, net.validators, 1, 3, [0], () => [65535]);
    // Within the gossip window of block 62, Alice signs sequence 2 again (paying Y) and then sequence 3.
    const twin = await make(config, alice, 'transfer', 60, { to: y.id, amount: '60' }, 2);
    const next = await make(config, alice, 'transfer', 61, { to: y.id, amount: '40' }, 3);
    expect(await arrival(twin, 62, 2, 'gossip')).toBe('accepted'); // a fresh record: only the replay can tell
    const r = replay(config, [...records, twin, next], 64);
    expect(r.refused[twin.id]?.code).toBe('equivocation');
    expect(r.refused[next.id]?.code).toBe('equivocated-author');
    expect(r.state.frozen[alice.id]).toEqual({ seq: 2, block: 60 });
    expect(r.state.balances[x.id]).toBe(60n);
    expect(r.state.balances[alice.id]).toBe(40n); // frozen: she can sign nothing that counts
  });
});

describe('finding 2: a validator cannot copy revealed weights into a backdated commit', () => {
  it('the backdated commit is refused on arrival, breaks the copier’s chain, and its reveal counts for nothing', async () => {
    const net = await network();
    const [honestV, copier] = net.validators;
    const salt = 'ffffffffffffffffffffffffffffffff';
    const weights = { netuid: 1, uids: [0], values: [65535] };
    // The honest validator commits in epoch 1 and reveals in epoch 2; the copier does not commit at all.
    const records = await honestEpochs(config, net.records, [honestV], 1, 2, [0], () => [65535]);
    records.push(...(await votes(config, records, 1, [copier], 2 * T + 4))); // the copier votes, like everyone
    const final = replay(config, records, 3 * T);
    expect(final.lastFinal).toBeGreaterThanOrEqual(1);
    // At block 52 the honest reveal is public. The copier signs a commit dated in epoch 1's first half, and reveals.
    const hash = weightsCommitHash({ ...weights, salt });
    const commit = await make(config, copier, 'weights.commit', T + 2, { netuid: 1, hash });
    const reveal = await make(config, copier, 'weights.reveal', 2 * T + 13, { ...weights, salt });
    expect(await arrival(commit, 2 * T + 12, final.lastVotedFinal, 'gossip')).toBe('stale-block');
    expect(await arrival(commit, 2 * T + 12, final.lastVotedFinal, 'sync')).toBe('final');
    // Even stored, it is dated before the copier's vote, which it claims to follow: replay (in block order) meets
    // it first, a gap in the chain, and the reveal after it breaks the chain too.
    const r = replay(config, [...records, commit, reveal], 3 * T);
    expect(r.refused[commit.id]?.code).toBe('sequence-gap');
    expect(r.refused[reveal.id]?.code).toBe('sequence-gap');
    const sub = r.state.subnets[0]!;
    expect(sub.weights[uidOf(r.state, 1, copier.id)]).toBeNull(); // no weights from the copy
  });

  it('a copier that signed nothing since is caught by the final checkpoint instead', async () => {
    const net = await network();
    const [honestV, copier] = net.validators;
    const salt = 'ffffffffffffffffffffffffffffffff';
    const weights = { netuid: 1, uids: [0], values: [65535] };
    // Both validators vote (the copier too), the honest one commits in epoch 1 and reveals in epoch 2.
    const records = await honestEpochs(config, net.records, [honestV], 1, 2, [0], () => [65535]);
    records.push(...(await votes(config, records, 1, [copier], 2 * T + 4)));
    // A node that never received the copier's vote holds a chain in which the backdated commit fits.
    const hash = weightsCommitHash({ ...weights, salt });
    const commit = await make(config, copier, 'weights.commit', T + 2, { netuid: 1, hash });
    const held = [...records.filter((r) => !(r.record.author === copier.id && r.record.kind === 'checkpoint')), commit];
    const reveal = await make(
      config,
      copier,
      'weights.reveal',
      2 * T + 13,
      { ...weights, salt },
      commit.record.seq + 1,
    );
    // The honest majority's checkpoint of epoch 1 does not hold the commit: a node that stored it adopts and drops it.
    const adopted = adopt([...held, reveal], records, 1);
    const r = replay(config, adopted, 3 * T);
    expect(adopted.map((x) => x.id)).not.toContain(commit.id);
    expect(r.refused[reveal.id]?.code).toMatch(/bad-reveal|sequence-gap/);
    expect(r.state.subnets[0]!.weights[uidOf(r.state, 1, copier.id)]).toBeNull();
  });
});

describe('finding 3: a backdated registration cannot evict a miner after the fact', () => {
  it('the registration is refused on arrival and dropped on adoption; the miner keeps its UID', async () => {
    const small = { ...config, subnets: config.subnets.map((s) => ({ ...s, maxUids: 3, immunityPeriod: 5 })) };
    const net = await network(small); // uids: miner 0, validators 1 and 2: the subnet is full
    let records = await honestEpochs(small, net.records, net.validators, 1, 3, [0], () => [65535]);
    const before = replay(small, records, 64);
    expect(before.lastFinal).toBeGreaterThanOrEqual(2);
    const attacker = await actor();
    const evict = await registration(small, attacker, 30, 'miner'); // dated in final epoch 1, signed at block 62
    const ctx = arrivalContext(small, 62, before.lastVotedFinal, 'sync');
    await expect(checkRecord(evict.record, small, ctx)).rejects.toMatchObject({ code: 'final' });
    // Stored anyway, it would have taken a UID in the past; adoption drops it and the miner keeps uid 0.
    const fooled = replay(small, [...records, evict], 64);
    expect(uidOf(fooled.state, 1, attacker.id)).toBeGreaterThanOrEqual(0);
    records = adoptWith(small, [...records, evict], records, 1);
    const after = replay(small, records, 64);
    expect(uidOf(after.state, 1, net.miner.id)).toBe(0);
    expect(uidOf(after.state, 1, attacker.id)).toBe(-1);
  });
});

function adoptWith(cfg: typeof config, held: StoredRecord[], honest: StoredRecord[], epoch: number): StoredRecord[] {
  const reference = replay(cfg, honest, (epoch + 2) * T);
  const ids = checkpointIds(cfg, honest, reference.refused, epoch);
  const { drop, missing } = adoption(cfg, held, epoch, ids);
  const byId = new Map(honest.map((r) => [r.id, r]));
  return [...held.filter((r) => !drop.includes(r.id)), ...missing.map((id) => byId.get(id)!)];
}

describe('when validators are offline', () => {
  it('finality waits, records keep flowing, and one vote round later finalizes everything before it', async () => {
    const net = await network();
    const alice = await actor();
    const records = [...net.records, await claim(config, alice, 6, 1000n)];
    // Nobody votes for 20 epochs; alice keeps paying, each payment arriving on time.
    for (let e = 1; e <= 20; e++) {
      const pay = await make(config, alice, 'transfer', e * T + 1, { to: net.miner.id, amount: '1' });
      const now = replay(config, records, e * T + 2);
      expect(now.lastVotedFinal).toBe(-1); // nothing voted final: the door stays open ...
      expect(await arrival(pay, e * T + 2, now.lastVotedFinal, 'gossip')).toBe('accepted'); // ... and records flow
      records.push(pay);
    }
    const waiting = replay(config, records, 21 * T + 4);
    expect(waiting.lastVotedFinal).toBe(-1);
    expect(waiting.checkpoints.every((c) => c.epoch === 0 || !c.final)).toBe(true);
    // The validators come back and vote on the last closed checkpoint: it and all before it are final.
    records.push(...(await votes(config, records, 20, net.validators, 21 * T + 4)));
    const back = replay(config, records, 21 * T + 5);
    expect(back.lastVotedFinal).toBe(20);
    expect(back.lastFinal).toBe(20);
    expect(back.state.balances[net.miner.id]).toBe(20n);
    // From now on, nothing dated in those epochs comes in any more.
    const late = await make(config, alice, 'transfer', 15 * T, { to: net.miner.id, amount: '1' }, 1);
    expect(await arrival(late, 21 * T + 6, back.lastVotedFinal, 'sync')).toBe('final');
  });
});

describe('old tallies (MAX_TALLIES)', () => {
  it('a replay keeps the last 16 tallies; votes on an epoch older than that are refused and change nothing', async () => {
    const net = await network();
    const records = [...net.records];
    // Epoch 2's checkpoint, taken while it is recent: votes naming it are well formed, just late.
    const early = replay(config, records, 3 * T + 4).checkpoints.find((c) => c.epoch === 2)!;
    expect(early).toBeDefined();
    // Twenty epochs pass without a vote.
    const block = 21 * T + 4;
    const without = replay(config, records, block + 1);
    expect(without.state.checkpoints.length).toBeLessThanOrEqual(MAX_TALLIES);
    expect(without.checkpoints.map((c) => c.epoch)).not.toContain(2);
    const late = await Promise.all(
      net.validators.map((v) =>
        make(config, v, 'checkpoint', block, {
          epoch: 2,
          recordsRoot: early.recordsRoot,
          stateRoot: early.stateRoot,
          previous: early.previous,
        }),
      ),
    );
    const withLate = replay(config, [...records, ...late], block + 1);
    for (const vote of late) expect(withLate.refused[vote.id]?.code).toBe('bad-checkpoint');
    // Had the tally of epoch 2 been kept, these two votes (all the permitted stake) would have made it final.
    expect(withLate.lastVotedFinal).toBe(-1);
    expect(withLate.lastFinal).toBe(without.lastFinal);
    expect(withLate.state.checkpoints).toEqual(without.state.checkpoints);
    expect(withLate.state.balances).toEqual(without.state.balances);
  });
});
