/**
 * Registration priced by demand (docs/ledger.md, "Registration"): the per-block limit, the proof of work bound to
 * a recent checkpoint at the current difficulty, the burn taken and destroyed, and the price rule at each close,
 * as unit tests and as a property (the burn stays within its bounds and every rao is accounted for).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { epochBlocks, type NetworkConfig } from './config.ts';
import { adjustRegistrationPrice } from './epoch.ts';
import { proofOfWorkBits } from './pow.ts';
import { replay, type StoredRecord } from './replay.ts';
import { initialState, recentCheckpoints, RECENT_CHECKPOINT_EPOCHS, subnetState, uidOf } from './state.ts';
import { actor, claim, make, registration, smallConfig, type Actor } from './testing.ts';

/** The small config with a real burn: 1000 rao at the floor, up to 1e6; 2 per block, 3 per epoch on target. */
const priced = (over: Partial<NetworkConfig['subnets'][0]['registration']> = {}): NetworkConfig => {
  const base = smallConfig();
  const registration = { maxPerBlock: 2, targetPerEpoch: 3, minBurn: '1000', maxBurn: '1000000', maxDifficulty: 8 };
  return {
    ...base,
    subnets: base.subnets.map((s) => ({ ...s, maxUids: 64, registration: { ...registration, ...over } })),
  };
};
const config = priced();
const T = epochBlocks(config);
const refusal = (records: StoredRecord[], id: string, close = 10 * T) =>
  replay(config, records, close).refused[id]?.code;

/** `n` funded keys registering at the given blocks (one key per block entry). */
async function registrants(blocks: number[], cfg = config) {
  const out: { who: Actor; records: StoredRecord[] }[] = [];
  for (const block of blocks) {
    const who = await actor();
    out.push({
      who,
      records: [await claim(cfg, who, block, 10_000_000n), await registration(cfg, who, block, 'miner')],
    });
  }
  return out;
}

describe('registration priced by demand', () => {
  it('burns the price from the balance and destroys it', async () => {
    const [one] = await registrants([5]);
    const result = replay(config, one!.records, 10);
    expect(uidOf(result.state, 1, one!.who.id)).toBe(0);
    expect(result.state.balances[one!.who.id]).toBe(10_000_000n - 1000n);
    expect(result.state.burned).toBe(1000n);
  });

  it(`takes at most maxPerBlock registrations in one block`, async () => {
    const three = await registrants([5, 5, 5]);
    const records = three.flatMap((r) => r.records);
    const result = replay(config, records, 10);
    const refused = three.filter((r) => result.refused[r.records[1]!.id]?.code === 'registration-limit');
    expect(refused).toHaveLength(1);
    expect(subnetState(result.state, 1).uids).toHaveLength(2);
  });

  it('refuses a registration that cannot pay, or offers less than the price', async () => {
    const poor = await actor();
    const unpaid = await registration(config, poor, 5, 'miner');
    expect(refusal([unpaid], unpaid.id)).toBe('overspend');
    const who = await actor();
    const funds = await claim(config, who, 5, 10_000_000n);
    const fair = await registration(config, { ...who, seq: 1 }, 6, 'miner');
    const under = await make(config, { ...who, seq: 1 }, 'register', 6, {
      ...fair.record.body,
      maxBurn: '999',
    } as never);
    expect(refusal([funds, under], under.id)).toBe('underpriced');
    expect(refusal([funds, fair], fair.id)).toBeUndefined();
  });

  it('binds the proof of work to a checkpoint of the last epochs: genesis only at the start, then a recent close', async () => {
    const who = await actor();
    const late = RECENT_CHECKPOINT_EPOCHS * T + 3;
    const funds = await claim(config, who, late - 1, 10_000_000n);
    const onGenesis = await registration(config, who, late, 'miner');
    expect(refusal([funds, onGenesis], onGenesis.id)).toBe('stale-proof');
    // Bound to the last close before it, the same registration counts.
    const state = replay(config, [funds], late).state;
    const recent = recentCheckpoints(state, config, late)[0]!;
    const bound = await registration(config, { ...who, seq: 1 }, late, 'miner', 1, recent);
    const result = replay(config, [funds, bound], late + 1);
    expect(result.refused[bound.id]).toBeUndefined();
    expect(uidOf(result.state, 1, who.id)).toBe(0);
  });

  it('raises the burn and the difficulty after an epoch over target, and lets them decay after quiet epochs', async () => {
    const cfg = config.subnets[0]!;
    // Epoch 0: 6 registrations (2 per block), twice the target: burn ×(6+3)/6 = ×1.5, difficulty +1 bit.
    const busy = await registrants([2, 2, 3, 3, 4, 4]);
    const records = busy.flatMap((r) => r.records);
    const after0 = subnetState(replay(config, records, T).state, 1);
    expect(after0.burn).toBe(1500n);
    expect(after0.difficulty).toBe(config.subnets[0]!.registrationDifficulty + 1);
    // A registration in epoch 1 needs the new difficulty: one at the floor is refused.
    // (A proof solved for the floor reaches one more bit half the time: take one that does not.)
    let [weak] = await registrants([T + 2]);
    while (proofOfWorkBits(config.networkId, weak!.records[1]!.record as never) > cfg.registrationDifficulty)
      [weak] = await registrants([T + 2]);
    expect(refusal([...records, ...weak!.records], weak!.records[1]!.id, 2 * T)).toBe('bad-pow');
    // Two quiet epochs: ×1/2 each, down to the floor; the difficulty back to the floor.
    const quiet = subnetState(replay(config, records, 3 * T).state, 1);
    expect(quiet.burn).toBe(1000n);
    expect(quiet.difficulty).toBe(config.subnets[0]!.registrationDifficulty);
  });

  it('keeps the burn within its bounds and never changes it at target, for any sequence of demand', () => {
    const cfg = config.subnets[0]!;
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 40 }), { minLength: 1, maxLength: 60 }), (demand) => {
        const sub = subnetState(initialState(config), 1);
        for (const regs of demand) {
          const before = sub.burn;
          sub.registrationsThisEpoch = regs;
          adjustRegistrationPrice(sub, cfg);
          expect(sub.burn).toBeGreaterThanOrEqual(BigInt(cfg.registration.minBurn));
          expect(sub.burn).toBeLessThanOrEqual(BigInt(cfg.registration.maxBurn));
          if (regs === cfg.registration.targetPerEpoch) expect(sub.burn).toBe(before);
          if (regs > cfg.registration.targetPerEpoch && before < BigInt(cfg.registration.maxBurn))
            expect(sub.burn).toBeGreaterThan(before);
        }
      }),
    );
  });
});
