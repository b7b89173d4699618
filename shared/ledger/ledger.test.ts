/**
 * The ledger: config validation, every refusal (stateless on arrival, and against the state on replay), the
 * canonical encoding, emission accounting, and a network of 3 miners and 2 validators over several epochs.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { findServedModel } from '../inference/catalogue.ts';
import { modelHash } from '../inference/protocol.ts';
import { parseNetworkConfig, NetworkConfigError, blockEmission } from './config.ts';
import { MODEL_HASHES, TEST_FAUCET_PEER_ID, productionProfile, testProfile } from './profiles.ts';
import { checkRecord, recordId, RecordRefused, signRecord, signedBytes, type LedgerRecord } from './records.ts';
import { replay, type StoredRecord } from './replay.ts';
import { applyRecord, initialState, stateRoot, totalStake, type LedgerState } from './state.ts';
import { actor, commitReveal, faucet, make, registration, smallConfig, type Actor } from './testing.ts';

const config = smallConfig();
const at = { nowBlock: 1000, minBlock: 0 };

describe('network config', () => {
  it('ships two valid profiles', () => {
    expect(parseNetworkConfig(productionProfile())).toMatchObject({ blockMs: 12_000, profile: 'production' });
    expect(parseNetworkConfig(productionProfile()).subnets[0]!.tempo).toBe(360);
    expect(parseNetworkConfig(testProfile(Date.now())).blockMs).toBe(1000);
  });
  it('names the field that is wrong', () => {
    const bad = testProfile(0) as unknown as { subnets: { tempo: unknown }[] };
    bad.subnets[0]!.tempo = 'soon';
    expect(() => parseNetworkConfig(bad)).toThrow(NetworkConfigError);
    expect(() => parseNetworkConfig(bad)).toThrow(/subnets\.0\.tempo/);
    expect(() => parseNetworkConfig({ ...testProfile(0), emissionPerBlock: '1.5' })).toThrow(/emissionPerBlock/);
    expect(() => parseNetworkConfig({ ...productionProfile(), faucetSeed: 'x' })).toThrow(/faucetSeed/);
    const twice = testProfile(0);
    twice.subnets.push({ ...twice.subnets[0]! });
    expect(() => parseNetworkConfig(twice)).toThrow(/appears twice/);
  });
  it('halves emission every interval', () => {
    const c = { ...testProfile(0), halvingIntervalBlocks: 10 };
    expect(blockEmission(c, 9)).toBe(1_000_000_000n);
    expect(blockEmission(c, 10)).toBe(500_000_000n);
    expect(blockEmission(c, 25)).toBe(250_000_000n);
  });
  it('has the right faucet id and model hashes', async () => {
    expect((await faucet(config)).id).toBe(TEST_FAUCET_PEER_ID);
    for (const [id, hash] of Object.entries(MODEL_HASHES)) expect(await modelHash(findServedModel(id)!)).toBe(hash);
  });
});

describe('records on arrival', () => {
  it('accepts a good record and gives it a stable id', async () => {
    const a = await actor();
    const r = await registration(config, a, 5, 'miner');
    const checked = await checkRecord(r.record, config, at);
    expect(checked.id).toBe(r.id);
    expect(recordId(r.record)).toBe(r.id);
  });

  it('signs canonical bytes: key order in the body does not matter', async () => {
    const a = await actor();
    const one = await make(config, a, 'transfer', 3, { to: a.id, amount: '5' }, 1);
    const reordered = { ...one.record, body: { amount: '5', to: a.id } } as LedgerRecord;
    expect(signedBytes(reordered)).toEqual(signedBytes(one.record));
    await expect(checkRecord(reordered, config, at)).resolves.toMatchObject({ id: one.id });
  });

  const refusal = async (raw: unknown, code: string, ctx = at, cfg = config) => {
    const err = await checkRecord(raw, cfg, ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RecordRefused);
    expect((err as RecordRefused).code).toBe(code);
    return (err as RecordRefused).message;
  };

  it('refuses malformed records, naming the field', async () => {
    const a = await actor();
    const r = (await make(config, a, 'transfer', 3, { to: a.id, amount: '5' })).record;
    expect(await refusal({ ...r, seq: 0 }, 'malformed')).toMatch(/seq/);
    expect(await refusal({ ...r, kind: 'mint' }, 'malformed')).toMatch(/kind/);
    expect(await refusal({ ...r, body: { to: a.id, amount: '-5' } }, 'malformed')).toMatch(/body\.amount/);
    expect(await refusal({ ...r, body: { to: a.id, amount: '0' } }, 'malformed')).toMatch(/body\.amount/);
    expect(await refusal('hello', 'malformed')).toBeTruthy();
    const w = (await make(config, a, 'weights.set', 3, { netuid: 1, uids: [2, 1], values: [1, 1] })).record;
    expect(await refusal(w, 'malformed')).toMatch(/strictly increasing/);
  });

  it('refuses a record for another network, even when well signed', async () => {
    const a = await actor();
    const other = { ...config, networkId: 'elsewhere' };
    const r = (await make(other, a, 'transfer', 3, { to: a.id, amount: '5' })).record;
    expect(await refusal(r, 'other-network')).toMatch(/elsewhere/);
  });

  it('refuses a bad signature, or a record changed after signing', async () => {
    const a = await actor();
    const b = await actor();
    const r = (await make(config, a, 'transfer', 3, { to: a.id, amount: '5' })).record;
    await refusal({ ...r, body: { to: a.id, amount: '6' } }, 'bad-signature');
    await refusal({ ...r, author: b.id }, 'bad-signature');
    const forged = await signRecord(b.key, { ...r, sig: undefined } as never);
    await refusal({ ...forged, author: a.id }, 'bad-signature');
  });

  it('refuses future and stale blocks', async () => {
    const a = await actor();
    const r = (await make(config, a, 'transfer', 1004, { to: a.id, amount: '5' })).record;
    expect(await refusal(r, 'future-block')).toMatch(/ahead/);
    const old = (await make(config, a, 'transfer', 10, { to: a.id, amount: '5' })).record;
    expect(await refusal(old, 'stale-block', { nowBlock: 1000, minBlock: 100 })).toMatch(/closed/);
  });

  it('refuses a registration without enough proof of work, or reusing another key/block', async () => {
    const hard = smallConfig();
    hard.subnets[0]!.registrationDifficulty = 16;
    const a = await actor();
    const weak = (await make(hard, a, 'register', 5, { netuid: 1, nonce: '0000000000000000', role: 'miner' })).record;
    await refusal(weak, 'bad-pow', at, hard);
    const good = await registration(hard, a, 5, 'miner');
    await expect(checkRecord(good.record, hard, at)).resolves.toBeTruthy();
    const b = await actor();
    const stolen = (await make(hard, b, 'register', 5, good.record.body as never)).record;
    await refusal(stolen, 'bad-pow', at, hard);
    const moved = (await make(hard, a, 'register', 6, good.record.body as never)).record;
    await refusal(moved, 'bad-pow', at, hard);
  });

  it('refuses a subnet that does not exist', async () => {
    const a = await actor();
    const r = (await make(config, a, 'weights.set', 3, { netuid: 9, uids: [0], values: [1] })).record;
    await refusal(r, 'unknown-subnet');
  });
});

/** Miners registered (uids 0..), then validators (the next uids), staked by the faucet at block 8. */
async function network(miners = 3, validators = 2) {
  const f = await faucet(config);
  const ms: Actor[] = [];
  const vs: Actor[] = [];
  const records: StoredRecord[] = [];
  for (let k = 0; k < miners; k++) {
    ms.push(await actor());
    records.push(await registration(config, ms[k]!, 1 + k, 'miner'));
  }
  for (let k = 0; k < validators; k++) {
    vs.push(await actor());
    records.push(await registration(config, vs[k]!, 1 + miners + k, 'validator'));
    records.push(await make(config, f, 'stake.add', 8, { hotkey: vs[k]!.id, amount: String((k + 1) * 1e12) }));
  }
  return { f, ms, vs, records };
}

function stateOf(records: StoredRecord[], through = 0): LedgerState {
  return replay(config, records, through).state;
}

describe('records against the ledger state', () => {
  const expectRefused = (state: LedgerState, r: StoredRecord, code: string) => {
    const before = stateRoot(state);
    let err: unknown;
    try {
      applyRecord(state, config, r.record);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RecordRefused);
    expect((err as RecordRefused).code).toBe(code);
    expect(stateRoot(state)).toBe(before); // a refused record changes nothing
  };

  it('refuses replays and old sequence numbers', async () => {
    const { f, records } = await network(1, 0);
    const t = await make(config, f, 'transfer', 6, { to: TEST_FAUCET_PEER_ID, amount: '1' });
    const state = stateOf([...records, t]);
    expectRefused(state, t, 'replay');
    expectRefused(state, await make(config, f, 'transfer', 7, { to: f.id, amount: '1' }, 1), 'replay');
  });

  it('refuses overspending: transfers, stake and unstake', async () => {
    const { ms, vs, records } = await network(1, 1);
    const state = stateOf(records);
    const poor = ms[0]!;
    expectRefused(state, await make(config, poor, 'transfer', 6, { to: vs[0]!.id, amount: '1' }), 'overspend');
    expectRefused(state, await make(config, poor, 'stake.add', 6, { hotkey: vs[0]!.id, amount: '1' }), 'overspend');
    expectRefused(state, await make(config, poor, 'stake.remove', 6, { hotkey: vs[0]!.id, amount: '1' }), 'overspend');
  });

  it('refuses weights from unregistered keys and keys without a permit', async () => {
    const { ms, records } = await network(2, 1);
    const state = stateOf(records);
    const stranger = await actor();
    const [commit] = await commitReveal(config, stranger, 0, [0], [1]);
    expectRefused(state, commit!, 'not-registered');
    const [minerCommit] = await commitReveal(config, ms[0]!, 0, [1], [1]);
    expectRefused(state, minerCommit!, 'no-permit'); // miners hold no stake, so no permit
  });

  it('lets stake wait on a hotkey that registers later (a stake and a registration may share a block)', async () => {
    const f = await faucet(config);
    const v = await actor();
    // The faucet stakes first, at the same block as the registration: in canonical order either may come first.
    const records = [
      await make(config, f, 'stake.add', 5, { hotkey: v.id, amount: '1000' }),
      await registration(config, v, 5, 'validator'),
    ];
    const state = stateOf(records);
    expect(totalStake(state, v.id)).toBe(1000n);
  });

  it('refuses a second registration, and registration into a full subnet of immune UIDs', async () => {
    const { ms, records } = await network(1, 0);
    const state = stateOf(records);
    expectRefused(state, await registration(config, ms[0]!, 8, 'miner'), 'already-registered');
    const tiny = smallConfig();
    tiny.subnets[0]!.maxUids = 1;
    const a = await actor();
    const b = await actor();
    const full = replay(tiny, [await registration(tiny, a, 1, 'miner')], 0).state;
    const late = await registration(tiny, b, 10, 'miner');
    expect(() => applyRecord(full, tiny, late.record)).toThrow(expect.objectContaining({ code: 'subnet-full' }));
  });

  it('refuses reveals without a matching commit, and weights outside their window', async () => {
    const { vs, records } = await network(2, 1);
    const v = vs[0]!;
    const state = stateOf(records);
    const [commit, reveal] = await commitReveal(config, v, 0, [0, 1], [10, 20]);
    expectRefused(state, reveal!, 'bad-reveal'); // nothing committed yet
    applyRecord(state, config, commit!.record);
    const tampered = await make(config, v, 'weights.reveal', 12, {
      netuid: 1,
      uids: [0, 1],
      values: [20, 10],
      salt: '0123456789abcdef0123456789abcdef',
    });
    expectRefused(state, tampered, 'bad-reveal');
    expectRefused(
      state,
      await make(config, v, 'weights.commit', 15, { netuid: 1, hash: 'a'.repeat(64) }),
      'wrong-window',
    );
    expectRefused(
      state,
      await make(config, v, 'weights.set', 15, { netuid: 1, uids: [0], values: [1] }),
      'wrong-window',
    );
    const early = await make(config, v, 'weights.reveal', 5, {
      netuid: 1,
      uids: [0, 1],
      values: [10, 20],
      salt: '0123456789abcdef0123456789abcdef',
    });
    expectRefused(state, early, 'wrong-window');
    const bad = await make(config, v, 'weights.reveal', 12, {
      netuid: 1,
      uids: [0, 7],
      values: [10, 20],
      salt: '0123456789abcdef0123456789abcdef',
    });
    expectRefused(state, bad, 'bad-weights');
    applyRecord(state, config, reveal!.record); // the honest reveal still lands
  });

  it('replaces the non-immune UID with the lowest emission when the subnet is full', async () => {
    const cfg = smallConfig();
    cfg.subnets[0]!.maxUids = 2;
    cfg.subnets[0]!.immunityPeriod = 5;
    const [a, b, c] = [await actor(), await actor(), await actor()];
    const r = replay(
      cfg,
      [
        await registration(cfg, a, 1, 'miner'),
        await registration(cfg, b, 2, 'miner'),
        await registration(cfg, c, 30, 'miner'),
      ],
      0,
    );
    expect(r.state.subnets[0]!.uids.map((u) => u.hotkey)).toEqual([c.id, b.id]); // equal emission: older one goes
  });
});

describe('epochs', () => {
  async function scenario() {
    const net = await network(3, 2);
    const [m0, m1, m2] = net.ms;
    const records = [...net.records];
    // uids: miners 0,1,2; validators 3,4. Both validators score miner 2 as faulty.
    // Validators are staked at block 5, so their weights start in epoch 1.
    for (let e = 1; e < 4; e++)
      for (const v of net.vs) records.push(...(await commitReveal(config, v, e, [0, 1, 2], [30000, 30000, 0])));
    void [m0, m1, m2];
    return { ...net, records };
  }

  it('pays honest miners, nothing to the faulty one, and accounts for every rao', async () => {
    const { records, ms, vs } = await scenario();
    const r = replay(config, records, 4 * 20);
    expect(r.epochs.map((e) => e.epoch)).toEqual([0, 1, 2, 3]);
    expect(Object.keys(r.refused)).toEqual([]);
    const last = r.epochs.at(-1)!;
    const inc = last.uids.map((u) => u.incentive);
    expect(inc[0]).toBeGreaterThan(30000);
    expect(inc[1]).toBeGreaterThan(30000);
    expect(inc[2]).toBe(0);
    expect(last.uids[3]!.dividends + last.uids[4]!.dividends).toBeGreaterThan(60000);
    for (const e of r.epochs) {
      expect(BigInt(e.amount)).toBe(20n * 1_000_000_000n);
      expect(BigInt(e.paid) + BigInt(e.dust)).toBe(BigInt(e.amount));
    }
    // Conservation: everything that exists = the initial balances + what emission created.
    let total = 0n;
    for (const v of Object.values(r.state.balances)) total += v;
    for (const s of Object.values(r.state.stakes)) for (const v of Object.values(s)) total += v;
    expect(total + r.state.dust).toBe(BigInt(config.initialBalances[TEST_FAUCET_PEER_ID]!) + r.state.issued);
    expect(r.state.issued).toBe(4n * 20n * 1_000_000_000n);
    expect(totalStake(r.state, ms[2]!.id)).toBe(0n);
    expect(totalStake(r.state, ms[0]!.id)).toBeGreaterThan(0n);
    // The faucet nominated both validators: it earned a share of their dividends.
    expect(r.state.stakes[vs[0]!.id]![TEST_FAUCET_PEER_ID]!).toBeGreaterThan(1_000_000_000_000n);
  });

  it('gives the same roots for any arrival order of the same records', async () => {
    const { records } = await scenario();
    const reference = replay(config, records, 80).epochs.map((e) => [e.recordsRoot, e.stateRoot]);
    await fc.assert(
      fc.property(
        fc.shuffledSubarray(records, { minLength: records.length, maxLength: records.length }),
        (shuffled) => {
          const again = replay(config, [...shuffled, ...shuffled.slice(0, 3)], 80); // duplicates count once
          expect(again.epochs.map((e) => [e.recordsRoot, e.stateRoot])).toEqual(reference);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('a weight copier earns no more than it would by being honest', async () => {
    // Validator 3 (the smaller stake) copies validator 4's weights one epoch late: under commit-reveal, the
    // freshest weights it can see are the last epoch's.
    const net = await network(3, 2);
    const [v4, v3] = net.vs as [Actor, Actor];
    const honest = [...net.records];
    const copying = [...net.records];
    const truth = (e: number) => (e % 2 === 0 ? [40000, 20000, 0] : [20000, 40000, 0]);
    const v3b = { ...v3, seq: v3.seq };
    const v4b = { ...v4, seq: v4.seq };
    for (let e = 1; e < 6; e++) {
      honest.push(...(await commitReveal(config, v3, e, [0, 1, 2], truth(e))));
      honest.push(...(await commitReveal(config, v4, e, [0, 1, 2], truth(e))));
      copying.push(...(await commitReveal(config, v3b, e, [0, 1, 2], truth(e))));
      copying.push(...(await commitReveal(config, v4b, e, [0, 1, 2], truth(Math.max(1, e - 1)))));
    }
    const stakeOf = (records: StoredRecord[]) => totalStake(replay(config, records, 120).state, v4.id);
    expect(stakeOf(copying)).toBeLessThanOrEqual(stakeOf(honest));
  });
});

void initialState;
