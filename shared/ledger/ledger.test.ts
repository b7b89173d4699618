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
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { sha256 } from '@noble/hashes/sha2.js';
import { checkRecord, recordId, RecordRefused, signRecord, signedBytes, type LedgerRecord } from './records.ts';
import { replay, type StoredRecord } from './replay.ts';
import {
  applyRecord,
  CHAIN_REFUSALS,
  initialState,
  stateRoot,
  totalStake,
  weightsCommitHash,
  type LedgerState,
  genesisHash,
} from './state.ts';
import {
  actor,
  claim,
  commitReveal,
  honestEpochs,
  make,
  registration,
  smallConfig,
  votes,
  type Actor,
} from './testing.ts';

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
    const faucet = { account: TEST_FAUCET_PEER_ID, maxClaim: '1' };
    expect(() => parseNetworkConfig({ ...productionProfile(), faucet })).toThrow(/faucet/);
    const mixed = testProfile(0);
    mixed.subnets.push({ ...mixed.subnets[0]!, netuid: 2, tempo: 30 });
    expect(() => parseNetworkConfig(mixed)).toThrow(/subnets\.1\.tempo: every subnet must share one tempo/);
    expect(() => parseNetworkConfig({ ...testProfile(0), graceBlocks: 9, gossipWindowBlocks: 9 })).toThrow(
      /gossipWindowBlocks: grace plus gossip window/,
    );
    expect(() => parseNetworkConfig({ ...testProfile(0), graceBlocks: 2, gossipWindowBlocks: 3 })).toThrow(
      /graceBlocks: must be at least gossipWindowBlocks/,
    );
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
    // The test faucet's account is the key derived from its public seed (nobody needs the key: claims draw on it).
    const seeded = await generateKeyPairFromSeed('Ed25519', sha256(new TextEncoder().encode('webtensor test faucet')));
    expect(peerIdFromPrivateKey(seeded).toString()).toBe(TEST_FAUCET_PEER_ID);
    expect(config.faucet?.account).toBe(TEST_FAUCET_PEER_ID);
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
    expect(await refusal(old, 'stale-block', { nowBlock: 1000, minBlock: 995 })).toMatch(/gossip window/);
    const final = { nowBlock: 1000, minBlock: 100, minBlockReason: 'final' as const };
    expect(await refusal(old, 'final', final)).toMatch(/final epoch/);
  });

  it('refuses a registration without enough proof of work, or reusing another key’s or checkpoint’s', async () => {
    const hard = smallConfig();
    hard.subnets[0]!.registrationDifficulty = 16;
    const a = await actor();
    const checkpoint = genesisHash(hard);
    const weakBody = { netuid: 1, nonce: '0000000000000000', role: 'miner' as const, checkpoint, maxBurn: '0' };
    const weak = (await make(hard, a, 'register', 5, weakBody)).record;
    await refusal(weak, 'bad-pow', at, hard);
    const good = await registration(hard, a, 5, 'miner');
    await expect(checkRecord(good.record, hard, at)).resolves.toBeTruthy();
    const b = await actor();
    const stolen = (await make(hard, b, 'register', 5, good.record.body as never)).record;
    await refusal(stolen, 'bad-pow', at, hard);
    const moved = { ...(good.record.body as object), checkpoint: 'ab'.repeat(32) };
    await refusal((await make(hard, a, 'register', 6, moved as never)).record, 'bad-pow', at, hard);
  });

  it('refuses a subnet that does not exist', async () => {
    const a = await actor();
    const r = (await make(config, a, 'weights.set', 3, { netuid: 9, uids: [0], values: [1] })).record;
    await refusal(r, 'unknown-subnet');
  });
});

/**
 * Miners registered (uids 0..), then validators (the next uids), each validator drawing (k + 1) * 1000 τ from the
 * faucet and staking it on itself at blocks 6-7. A nominator draws 500 τ and stakes it on the first validator.
 */
async function network(miners = 3, validators = 2) {
  const ms: Actor[] = [];
  const vs: Actor[] = [];
  const nominator = await actor();
  const records: StoredRecord[] = [];
  for (let k = 0; k < miners; k++) {
    ms.push(await actor());
    records.push(await registration(config, ms[k]!, 1 + k, 'miner'));
  }
  for (let k = 0; k < validators; k++) {
    vs.push(await actor());
    const amount = BigInt(k + 1) * 1_000_000_000_000n;
    records.push(await registration(config, vs[k]!, 1 + miners + k, 'validator'));
    records.push(await claim(config, vs[k]!, 6, amount));
    records.push(await make(config, vs[k]!, 'stake.add', 7, { hotkey: vs[k]!.id, amount: String(amount) }));
  }
  if (validators > 0) {
    records.push(await claim(config, nominator, 6, 500_000_000_000n));
    records.push(await make(config, nominator, 'stake.add', 7, { hotkey: vs[0]!.id, amount: '500000000000' }));
  }
  return { nominator, ms, vs, records };
}

function stateOf(records: StoredRecord[], through = 0): LedgerState {
  return replay(config, records, through).state;
}

describe('records against the ledger state', () => {
  /** Everything but the author chains (a record refused for what it does still takes its chain place). */
  const rootBeyondChains = (state: LedgerState) => stateRoot({ ...state, chains: {} });
  const expectRefused = (state: LedgerState, r: StoredRecord, code: string) => {
    const before = rootBeyondChains(state);
    const chainsBefore = JSON.stringify(state.chains);
    let err: unknown;
    try {
      applyRecord(state, config, r.record);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RecordRefused);
    expect((err as RecordRefused).code).toBe(code);
    expect(rootBeyondChains(state)).toBe(before); // a refused record changes nothing else
    if (CHAIN_REFUSALS.has(code)) expect(JSON.stringify(state.chains)).toBe(chainsBefore);
  };
  const refusedIn = (records: StoredRecord[], through: number) => {
    const r = replay(config, records, through);
    return (x: StoredRecord) => r.refused[x.id]?.code ?? 'accepted';
  };

  it('keeps each author a chain: the next sequence number, never an earlier block, no second record per number', async () => {
    const { ms, records } = await network(1, 0);
    const m = ms[0]!; // seq 1: its registration at block 1
    const state = stateOf(records);
    expectRefused(state, await make(config, m, 'transfer', 6, { to: m.id, amount: '1' }, 3), 'sequence-gap');
    const before = await make(config, { ...m }, 'transfer', 0, { to: m.id, amount: '1' }, 2);
    expectRefused(state, before, 'backdated');
    // Sequence 1 again, with other content: an equivocation. It is refused and freezes the author.
    const second = await make(config, m, 'transfer', 9, { to: m.id, amount: '1' }, 1);
    let err: unknown;
    try {
      applyRecord(state, config, second.record);
    } catch (e) {
      err = e;
    }
    expect((err as RecordRefused).code).toBe('equivocation');
    expect(state.frozen[m.id]).toEqual({ seq: 1, block: 9 });
    expectRefused(state, await make(config, m, 'transfer', 10, { to: m.id, amount: '1' }, 2), 'equivocated-author');
  });

  it('lets a record refused for what it does keep its place in the chain (like a nonce)', async () => {
    const { ms, records } = await network(1, 0);
    const m = ms[0]!;
    const overspend = await make(config, m, 'transfer', 6, { to: m.id, amount: '5' });
    const next = await claim(config, m, 7, 5n);
    const r = replay(config, [...records, overspend, next], 0);
    expect(r.refused[overspend.id]?.code).toBe('overspend');
    expect(r.refused[next.id]).toBeUndefined();
    expect(r.state.balances[m.id]).toBe(5n);
  });

  it('pays faucet claims up to the limit, only on test networks', async () => {
    const a = await actor();
    const state = stateOf([]);
    expectRefused(state, await claim(config, a, 3, 10_000_000_000_001n), 'overspend');
    applyRecord(state, config, (await claim(config, a, 4, 10_000_000_000_000n)).record);
    expect(state.balances[a.id]).toBe(10_000_000_000_000n);
    const prod = { ...config, faucet: undefined };
    const b = await actor();
    const r = await claim(prod, b, 3, 5n);
    expect(() => applyRecord(initialState(prod), prod, r.record)).toThrow(
      expect.objectContaining({ code: 'no-faucet' }),
    );
  });

  it('refuses overspending: transfers, stake and unstake', async () => {
    const { ms, vs, records } = await network(1, 1);
    const state = stateOf(records);
    const poor = ms[0]!;
    expectRefused(state, await make(config, poor, 'transfer', 6, { to: vs[0]!.id, amount: '1' }), 'overspend');
    expectRefused(state, await make(config, poor, 'stake.add', 6, { hotkey: vs[0]!.id, amount: '1' }), 'overspend');
    expectRefused(state, await make(config, poor, 'stake.remove', 6, { hotkey: vs[0]!.id, amount: '1' }), 'overspend');
  });

  it('refuses weights from unregistered keys and keys without a permit (permits start the epoch after stake)', async () => {
    const { ms, vs, records } = await network(2, 1);
    const stranger = await actor();
    const [strangerCommit] = await commitReveal(config, stranger, 1, [0], [1]);
    const [minerCommit] = await commitReveal(config, ms[0]!, 1, [1], [1]);
    // The validator staked at block 7: no permit in epoch 0, one from epoch 1 on.
    const early = await make(config, vs[0]!, 'weights.commit', 8, { netuid: 1, hash: 'a'.repeat(64) });
    const onTime = await make(config, vs[0]!, 'weights.commit', 21, { netuid: 1, hash: 'a'.repeat(64) });
    const code = refusedIn([...records, strangerCommit!, minerCommit!, early, onTime], 40);
    expect(code(strangerCommit!)).toBe('not-registered');
    expect(code(minerCommit!)).toBe('no-permit'); // miners hold no stake, so no permit
    expect(code(early)).toBe('no-permit');
    expect(code(onTime)).toBe('accepted');
  });

  it('lets stake wait on a hotkey that registers later (a stake and a registration may share a block)', async () => {
    const n = await actor();
    const v = await actor();
    // The nominator stakes at the same block as the registration: in canonical order either may come first.
    const records = [
      await claim(config, n, 4, 1000n),
      await make(config, n, 'stake.add', 5, { hotkey: v.id, amount: '1000' }),
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

  it('refuses reveals without a final commit of the epoch before, and weights outside their windows', async () => {
    const { vs, records } = await network(2, 1);
    const v = vs[0]!;
    const salt = '0123456789abcdef0123456789abcdef';
    const weights = { netuid: 1, uids: [0, 1], values: [10, 20] };
    const hash = weightsCommitHash({ ...weights, salt });
    const all = [...records];
    const add = async (p: Promise<StoredRecord>) => {
      const r = await p;
      all.push(r);
      return r;
    };
    const revealFirstHalf = await add(make(config, v, 'weights.reveal', 25, { ...weights, salt }));
    const commit = await add(make(config, v, 'weights.commit', 26, { netuid: 1, hash }));
    const set = await add(make(config, v, 'weights.set', 27, { netuid: 1, uids: [0], values: [1] }));
    const commitSecondHalf = await add(make(config, v, 'weights.commit', 31, { netuid: 1, hash }));
    const revealSameEpoch = await add(make(config, v, 'weights.reveal', 32, { ...weights, salt }));
    all.push(...(await votes(config, all, 1, [v], 44))); // epoch 1 final at block 44, before reveals open at 50
    const tampered = await add(
      make(config, v, 'weights.reveal', 51, { netuid: 1, uids: [0, 1], values: [20, 10], salt }),
    );
    const beyond = await add(
      make(config, v, 'weights.reveal', 52, { netuid: 1, uids: [0, 7], values: [10, 20], salt }),
    );
    const honest = await add(make(config, v, 'weights.reveal', 53, { ...weights, salt }));
    const code = refusedIn(all, 60);
    expect(code(revealFirstHalf)).toBe('wrong-window');
    expect(code(commit)).toBe('accepted');
    expect(code(set)).toBe('wrong-window');
    expect(code(commitSecondHalf)).toBe('wrong-window');
    expect(code(revealSameEpoch)).toBe('bad-reveal'); // a commit is revealed in the next epoch, not its own
    expect(code(tampered)).toBe('bad-reveal');
    expect(code(beyond)).toBe('bad-weights');
    expect(code(honest)).toBe('accepted'); // the honest reveal still lands
  });

  it('refuses a reveal whose commit epoch was not final when reveals opened', async () => {
    const { vs, records } = await network(2, 1);
    const v = vs[0]!;
    const [commit, reveal] = await commitReveal(config, v, 1, [0, 1], [10, 20]);
    // Nobody votes on epoch 1: it is not final, so the reveal in epoch 2 does not count.
    const code = refusedIn([...records, commit!, reveal!], 60);
    expect(code(reveal!)).toBe('not-final');
    // A vote after the reveal window opened is too late for this reveal, though it makes the epoch final.
    const lateVotes = await votes(config, [...records, commit!], 1, [v], 51);
    const late = replay(config, [...records, commit!, ...lateVotes, reveal!], 60);
    expect(late.refused[reveal!.id]?.code).toBe('not-final');
    expect(late.lastFinal).toBeGreaterThanOrEqual(1);
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
  /** uids: miners 0,1,2; validators 3,4. Both validators score miner 2 as faulty, from epoch 1 (their permits). */
  async function scenario() {
    const net = await network(3, 2);
    const records = await honestEpochs(config, net.records, net.vs, 1, 4, [0, 1, 2], () => [30000, 30000, 0]);
    return { ...net, records };
  }

  it('pays honest miners, nothing to the faulty one, and accounts for every rao', async () => {
    const { records, ms, vs, nominator } = await scenario();
    const r = replay(config, records, 5 * 20);
    expect(r.epochs.map((e) => e.epoch)).toEqual([0, 1, 2, 3, 4]);
    // Only the validators' votes on epoch 0 (nobody had a permit then) are refused.
    expect(new Set(Object.values(r.refused).map((x) => x.code))).toEqual(new Set(['no-permit']));
    expect(r.lastFinal).toBe(3);
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
    expect(r.state.issued).toBe(5n * 20n * 1_000_000_000n);
    expect(totalStake(r.state, ms[2]!.id)).toBe(0n);
    expect(totalStake(r.state, ms[0]!.id)).toBeGreaterThan(0n);
    // The nominator staked on the first validator: it earned a share of its dividends.
    expect(r.state.stakes[vs[0]!.id]![nominator.id]!).toBeGreaterThan(500_000_000_000n);
  });

  it('gives the same roots and final checkpoints for any arrival order of the same records', async () => {
    const { records } = await scenario();
    const reference = replay(config, records, 100);
    const roots = (r: typeof reference) => r.epochs.map((e) => [e.recordsRoot, e.stateRoot]);
    await fc.assert(
      fc.property(
        fc.shuffledSubarray(records, { minLength: records.length, maxLength: records.length }),
        (shuffled) => {
          const again = replay(config, [...shuffled, ...shuffled.slice(0, 3)], 100); // duplicates count once
          expect(roots(again)).toEqual(roots(reference));
          expect(again.checkpoints).toEqual(reference.checkpoints);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('a weight copier earns no more than it would by being honest', async () => {
    // Validator 3 (the smaller stake) copies validator 4's weights: committing in epoch e, the freshest it can see are the reveals of
    // epoch e - 1, which are the commits of epoch e - 2 (a commit is revealed in the epoch after its own).
    const net = await network(3, 2);
    const [v3, v4] = net.vs as [Actor, Actor];
    const truth = (e: number) =>
      [
        [40000, 20000, 0],
        [20000, 40000, 0],
        [30000, 10000, 20000],
      ][e % 3]!;
    const fork = (a: Actor) => ({ ...a });
    const honest = await honestEpochs(config, net.records, [fork(v3), fork(v4)], 1, 6, [0, 1, 2], (_v, e) => truth(e));
    const copying = await honestEpochs(config, net.records, [fork(v3), fork(v4)], 1, 6, [0, 1, 2], (v, e) =>
      v.id === v3.id ? truth(Math.max(1, e - 2)) : truth(e),
    );
    const stakeOf = (records: StoredRecord[]) => totalStake(replay(config, records, 140).state, v3.id);
    expect(stakeOf(copying)).toBeLessThanOrEqual(stakeOf(honest));
  });
});

void initialState;
