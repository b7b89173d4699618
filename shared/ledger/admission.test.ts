/**
 * Admission's rules, one by one, against hand-built views of a replay, and a property: whatever order and sizes
 * of spends arrive, what admission lets through never spends more than the author holds.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  Admission,
  MAX_PENDING_PER_AUTHOR,
  RECORDS_PER_AUTHOR_PER_BLOCK,
  UNCERTAIN_REFUSALS,
  type AdmissionView,
} from './admission.ts';
import { actor, make, smallConfig, type Actor } from './testing.ts';
import type { StoredRecord } from './replay.ts';

const config = smallConfig();
const tempo = config.subnets[0]!.tempo;
let alice: Actor;
let bob: Actor;
let val: Actor;
let miner: Actor;

beforeAll(async () => {
  [alice, bob, val, miner] = await Promise.all([actor(), actor(), actor(), actor()]);
});

/** A view at block 100 (epochs 0-3 closed): Alice holds 1000 rao and 300 staked on Val; Val has a permit. */
const view = (over: Partial<AdmissionView> = {}): AdmissionView => ({
  closeThrough: 100,
  balances: { [alice.id]: 1000n, [config.faucet!.account]: 10n ** 15n },
  nominations: { [val.id]: { [alice.id]: 300n } },
  chains: {},
  frozen: {},
  subnets: [{ netuid: 1, uids: [{ hotkey: val.id }, { hotkey: miner.id }], permits: [true, false] }],
  checkpoints: [{ epoch: 4, voters: [val.id] }],
  ...over,
});
const admitted = (v = view()) => {
  const a = new Admission(config);
  a.rebase(v);
  return a;
};
const admit = (a: Admission, r: StoredRecord) => a.admit(r.record, r.id);
const code = (fn: () => void) => {
  try {
    fn();
    return 'admitted';
  } catch (err) {
    return (err as { code: string }).code;
  }
};
const fresh = (who: Actor) => ({ ...who, seq: 0 });

const transfer = (who: Actor, amount: bigint, block = 101, to = bob.id) =>
  make(config, who, 'transfer', block, { to, amount: amount.toString() });

describe('admission: spends are funded by the balance net of pending records', () => {
  it('admits a transfer the balance covers; refuses the next one that the pending one left unfunded', async () => {
    const a = admitted();
    const me = fresh(alice);
    const first = await transfer(me, 700n);
    const second = await transfer(me, 400n);
    // A refused record takes no place in the chain: the author's next record reuses its sequence number.
    const third = await make(config, me, 'transfer', 101, { to: bob.id, amount: '300' }, 2);
    expect(code(() => admit(a, first))).toBe('admitted');
    expect(code(() => admit(a, second))).toBe('overspend');
    expect(code(() => admit(a, third))).toBe('admitted');
  });

  it('refuses every spend of a key that holds nothing: transfers, stakes, stake removals', async () => {
    const a = admitted();
    const nobody = await actor();
    const spends = [
      await transfer(nobody, 1n),
      await make(config, nobody, 'stake.add', 101, { hotkey: val.id, amount: '1' }, 1),
      await make(config, nobody, 'stake.remove', 101, { hotkey: val.id, amount: '1' }, 1),
    ];
    expect(spends.map((r) => code(() => admit(a, r)))).toEqual(['overspend', 'overspend', 'overspend']);
    expect(a.pendingCount).toBe(0);
  });

  it('needs the funds for a transfer to oneself, and for the most a registration may burn', async () => {
    const a = admitted();
    const nobody = await actor();
    const toSelf = await make(config, nobody, 'transfer', 101, { to: nobody.id, amount: '5' });
    expect(code(() => admit(a, toSelf))).toBe('overspend');
    const body = { netuid: 1, nonce: '0'.repeat(16), role: 'miner' as const, checkpoint: '0'.repeat(64) };
    const unfunded = await make(config, fresh(bob), 'register', 101, { ...body, maxBurn: '1' });
    expect(code(() => admit(a, unfunded))).toBe('overspend');
    const funded = await make(config, fresh(alice), 'register', 101, { ...body, maxBurn: '1000' });
    const next = await transfer({ ...fresh(alice), seq: 1 }, 1n);
    expect(code(() => admit(a, funded))).toBe('admitted');
    expect(code(() => admit(a, next))).toBe('overspend');
  });

  it('counts what pending records pay an account: Bob may spend what Alice just sent him', async () => {
    const a = admitted();
    const pay = await transfer(fresh(alice), 500n);
    const spend = await transfer(fresh(bob), 500n, 101, alice.id);
    expect(code(() => admit(a, spend))).toBe('overspend');
    admit(a, pay);
    expect(code(() => admit(a, spend))).toBe('admitted');
  });

  it('removes at most the stake the author holds on the hotkey, net of pending removals', async () => {
    const a = admitted();
    const me = fresh(alice);
    const remove = (amount: string) => make(config, me, 'stake.remove', 101, { hotkey: val.id, amount });
    const first = await remove('200');
    const second = await remove('200');
    const third = await make(config, me, 'stake.remove', 101, { hotkey: val.id, amount: '100' }, 2);
    expect(code(() => admit(a, first))).toBe('admitted');
    expect(code(() => admit(a, second))).toBe('overspend');
    expect(code(() => admit(a, third))).toBe('admitted');
  });

  it('admits faucet claims up to the claim limit while the faucet holds enough', async () => {
    const a = admitted();
    const me = fresh(bob);
    const tooMuch = (BigInt(config.faucet!.maxClaim) + 1n).toString();
    const over = await make(config, me, 'faucet.claim', 101, { amount: tooMuch });
    const ok = await make(config, me, 'faucet.claim', 101, { amount: config.faucet!.maxClaim }, 1);
    expect(code(() => admit(a, over))).toBe('overspend');
    expect(code(() => admit(a, ok))).toBe('admitted');
    const empty = admitted(view({ balances: {} }));
    const claim = await make(config, fresh(bob), 'faucet.claim', 101, { amount: '1' });
    expect(code(() => admit(empty, claim))).toBe('overspend');
  });

  it('never lets through more than the author holds, whatever spends arrive in whatever order', async () => {
    const amounts = fc.array(fc.bigInt({ min: 1n, max: 600n }), { minLength: 1, maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(amounts, async (list) => {
        const a = admitted();
        let spent = 0n;
        let seq = 1;
        for (const [k, amount] of list.entries()) {
          const block = 101 + Math.floor(k / RECORDS_PER_AUTHOR_PER_BLOCK);
          const r = await make(config, alice, 'transfer', block, { to: bob.id, amount: amount.toString() }, seq);
          if (code(() => admit(a, r)) === 'admitted') [spent, seq] = [spent + amount, seq + 1];
        }
        expect(spent).toBeLessThanOrEqual(1000n);
      }),
      { numRuns: 30 },
    );
  });
});

describe('admission: weights and votes come from registered, permitted hotkeys', () => {
  const weights = (who: Actor, block = 101) =>
    make(config, fresh(who), 'weights.set', block, { netuid: 1, uids: [0, 1], values: [1, 1] });

  it('admits weights from a permitted UID; refuses an unregistered key and a UID without a permit', async () => {
    const a = admitted();
    const fromValidator = await weights(val);
    const fromMiner = await weights(miner);
    const fromStranger = await weights(await actor());
    expect(code(() => admit(a, fromValidator))).toBe('admitted');
    expect(code(() => admit(a, fromMiner))).toBe('no-permit');
    expect(code(() => admit(a, fromStranger))).toBe('not-registered');
  });

  it('gives a registered UID the benefit of the doubt in an epoch this view has not closed (permits change there)', async () => {
    const a = admitted();
    // The view closed through block 100; with tempo 20 a record of block 101 is in epoch 5, which closed at 100.
    // One of epoch 6 (from block 120) falls after a close this view has not seen.
    const late = await weights(miner, 121);
    const stranger = await weights(await actor(), 121);
    expect(code(() => admit(a, late))).toBe('admitted');
    expect(code(() => admit(a, stranger))).toBe('not-registered');
  });

  it('admits a weight list only within the subnet', async () => {
    const a = admitted();
    const beyond = await make(config, fresh(val), 'weights.set', 101, {
      netuid: 1,
      uids: [config.subnets[0]!.maxUids],
      values: [1],
    });
    expect(code(() => admit(a, beyond))).toBe('bad-weights');
  });

  it('admits a checkpoint vote from a voter of that epoch on a recent epoch only', async () => {
    const a = admitted();
    const body = { recordsRoot: '0'.repeat(64), stateRoot: '0'.repeat(64), previous: '0'.repeat(64) };
    const vote = await make(config, fresh(val), 'checkpoint', 101, { epoch: 4, ...body });
    const stranger = await make(config, fresh(bob), 'checkpoint', 101, { epoch: 4, ...body });
    expect(code(() => admit(a, vote))).toBe('admitted');
    expect(code(() => admit(a, stranger))).toBe('no-permit');
    const old = await make(config, fresh(val), 'checkpoint', 102, { epoch: 0, ...body });
    const far = admitted(view({ closeThrough: 100 * tempo }));
    expect(code(() => admit(far, old))).toBe('bad-checkpoint');
  });

  it('admits one vote per voter and epoch: a second is refused, pending or replayed, and gossip does not blame its sender', async () => {
    const body = { recordsRoot: '0'.repeat(64), stateRoot: '0'.repeat(64), previous: '0'.repeat(64) };
    const voter = fresh(val);
    const first = await make(config, voter, 'checkpoint', 101, { epoch: 4, ...body });
    // Another root, the next sequence number: a different record on the same epoch.
    const second = await make(config, voter, 'checkpoint', 101, { epoch: 4, ...body, stateRoot: '1'.repeat(64) });
    // Signed after the first, in the second's place (seq 2).
    const onThree = await make(config, { ...val, seq: 1 }, 'checkpoint', 102, { epoch: 3, ...body });
    const a = admitted();
    expect(code(() => admit(a, first))).toBe('admitted');
    expect(code(() => admit(a, second))).toBe('second-vote');
    // Another epoch is another vote.
    expect(code(() => admit(a, onThree))).toBe('admitted');
    // After the replay counted the first (its `voted`), the second is still refused.
    const replayed = admitted(
      view({
        chains: { [val.id]: { seq: 1, block: 101 } },
        checkpoints: [{ epoch: 4, voters: [val.id], voted: [val.id] }],
      }),
    );
    expect(code(() => admit(replayed, second))).toBe('second-vote');
    expect(UNCERTAIN_REFUSALS.has('second-vote')).toBe(true);
  });
});

describe('admission: quotas and chains', () => {
  it('leaves a record whose predecessor has not arrived to later (the sender may only be ahead of us)', async () => {
    const a = admitted();
    const me = fresh(alice);
    const first = await transfer(me, 1n);
    const second = await transfer(me, 1n);
    expect(code(() => admit(a, second))).toBe('sequence-gap');
    expect(code(() => admit(a, first))).toBe('admitted');
    expect(code(() => admit(a, second))).toBe('admitted');
  });

  it(`admits at most ${RECORDS_PER_AUTHOR_PER_BLOCK} records of one author in one block, and the quota survives a replay`, async () => {
    const a = admitted();
    const me = fresh(alice);
    const records = [];
    for (let k = 0; k <= RECORDS_PER_AUTHOR_PER_BLOCK; k++) records.push(await transfer(me, 1n));
    const codes = records.map((r) => code(() => admit(a, r)));
    expect(codes.filter((c) => c === 'admitted')).toHaveLength(RECORDS_PER_AUTHOR_PER_BLOCK);
    expect(codes.at(-1)).toBe('quota');
    a.rebase(view({ chains: { [alice.id]: { seq: RECORDS_PER_AUTHOR_PER_BLOCK, block: 101 } } }));
    const seq = RECORDS_PER_AUTHOR_PER_BLOCK + 1;
    const again = await make(config, me, 'transfer', 101, { to: bob.id, amount: '2' }, seq);
    expect(code(() => admit(a, again))).toBe('quota');
    const nextBlock = await make(config, me, 'transfer', 102, { to: bob.id, amount: '1' }, seq);
    expect(code(() => admit(a, nextBlock))).toBe('admitted');
  });

  it(`holds at most ${MAX_PENDING_PER_AUTHOR} records of one author until a replay includes them`, async () => {
    const a = admitted();
    const me = fresh(alice);
    let last = 'admitted';
    for (let k = 0; k <= MAX_PENDING_PER_AUTHOR; k++) {
      const r = await transfer(me, 1n, 101 + Math.floor(k / RECORDS_PER_AUTHOR_PER_BLOCK));
      last = code(() => admit(a, r));
    }
    expect(last).toBe('quota');
    expect(a.pendingCount).toBe(MAX_PENDING_PER_AUTHOR);
    // The replay took them all: they no longer count as pending.
    a.rebase(view({ chains: { [alice.id]: { seq: MAX_PENDING_PER_AUTHOR, block: 111 } } }));
    expect(a.pendingCount).toBe(0);
  });

  it('refuses a frozen author; admits one equivocation as evidence, then refuses its author', async () => {
    const frozen = admitted(view({ frozen: { [alice.id]: { seq: 1, block: 90 } } }));
    const any = await transfer(fresh(alice), 1n);
    expect(code(() => admit(frozen, any))).toBe('equivocated-author');

    const a = admitted(view({ chains: { [alice.id]: { seq: 3, block: 99 } } }));
    const reused = await make(config, fresh(alice), 'transfer', 101, { to: bob.id, amount: '1' }, 3);
    const after = await make(config, fresh(alice), 'transfer', 101, { to: bob.id, amount: '1' }, 4);
    expect(code(() => admit(a, reused))).toBe('admitted');
    expect(code(() => admit(a, after))).toBe('equivocated-author');
  });

  it('forgets quota counters and stale pending records when pruned', async () => {
    const a = admitted();
    const r = await transfer(fresh(alice), 1n);
    admit(a, r);
    a.prune(101 + 3 * tempo);
    expect(a.pendingCount).toBe(0);
  });
});
