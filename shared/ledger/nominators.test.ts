/**
 * Nominators are paid exactly: each closed epoch's summary names what every nominator of a validator got,
 * (dividends − take) × its stake ÷ the validator's total stake, rounded down; the nominator's stake on the
 * validator grows by exactly that, and the validator keeps the rest (take and rounding).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { replay, type Replay } from './replay.ts';
import { actor, claim, honestEpochs, make, registration, smallConfig, type Actor } from './testing.ts';

const config = smallConfig();
const tempo = config.subnets[0]!.tempo;
let result: Replay;
let nominator: Actor;
let v: Actor;
let staked: bigint;

beforeAll(async () => {
  const miner = await actor();
  [v, nominator] = [await actor(), await actor()];
  staked = 333_333_333_333n;
  let records = [
    await registration(config, miner, 1, 'miner'),
    await registration(config, v, 2, 'validator'),
    await claim(config, v, 4, 1_000_000_000_000n),
    await make(config, v, 'stake.add', 5, { hotkey: v.id, amount: '1000000000000' }),
    await claim(config, nominator, 4, staked),
    await make(config, nominator, 'stake.add', 6, { hotkey: v.id, amount: staked.toString() }),
  ];
  records = await honestEpochs(config, records, [v], 1, 6, [0], () => [65535]);
  result = replay(config, records, 7 * tempo);
});

describe('nominator payouts', () => {
  it('pays each nominator its exact share of the dividends after the take, and credits it to its stake', () => {
    const paid = result.epochs.filter((e) => e.nominators.length > 0);
    expect(paid.length).toBeGreaterThanOrEqual(3);
    let expectedStake = staked;
    for (const e of result.epochs) {
      const u = e.uids.find((x) => x.hotkey === v.id)!;
      const dividends = BigInt(u.dividendsRao);
      expect(BigInt(u.take)).toBe((dividends * BigInt(config.delegateTake)) / 65535n);
      for (const n of e.nominators) {
        expect(n).toMatchObject({ hotkey: v.id, account: nominator.id });
        expect(BigInt(n.stake)).toBe(expectedStake);
        const share = ((dividends - BigInt(u.take)) * BigInt(n.stake)) / BigInt(u.stake);
        expect(BigInt(n.amount)).toBe(share);
        expectedStake += share;
      }
    }
    expect(result.state.stakes[v.id]![nominator.id]).toBe(expectedStake);
    expect(expectedStake).toBeGreaterThan(staked);
  });
});
