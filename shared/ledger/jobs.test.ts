/**
 * Batch jobs (docs/jobs.md): every rule and every refusal of job.open, job.claim, job.result, job.audit and
 * job.cancel, time (lapsed claims, deadlines, settlement), admission's checks, the state text with jobs, and
 * properties: random sequences of job records never create or destroy rao except by the stated rules, every
 * closed job paid + refunded its deposit exactly, and the replay is the same in any arrival order and from any base.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { Admission } from './admission.ts';
import { epochBlocks } from './config.ts';
import {
  AUDIT_EPOCHS,
  CLAIM_EPOCHS,
  jobHeld,
  jobsHeld,
  MAX_CLAIMS_PER_MINER,
  MAX_JOB_EPOCHS,
  MAX_OPEN_JOBS,
  MAX_OPEN_JOBS_PER_CLIENT,
  PENALTY_MULTIPLE,
  shardPayment,
  shardRange,
  type JobState,
} from './jobs.ts';
import { TEST_FAUCET_PEER_ID } from './profiles.ts';
import { checkRecord, RecordRefused, type Body, type RecordKind } from './records.ts';
import { replay, type Replay, type StoredRecord } from './replay.ts';
import { bodyHashOfText, StateDigest, stateFromText, stateText } from './state-text.ts';
import { applyRecord, type LedgerState } from './state.ts';
import { actor, claim, make, registration, smallConfig, type Actor } from './testing.ts';

const config = smallConfig();
const T = epochBlocks(config); // 20
const MODEL = config.subnets[0]!.model;
const INPUT = 'ab'.repeat(32);
const RESULTS = 'cd'.repeat(32);
const OTHER_RESULTS = 'ef'.repeat(32);
const FUNDS = 1_000_000_000n;
const INITIAL = BigInt(config.initialBalances[TEST_FAUCET_PEER_ID]!);

let client: Actor;
let m1: Actor;
let m2: Actor;
let val: Actor;
let poor: Actor;
let stranger: Actor;
/** Miners m1, m2 and the poor miner registered, a validator with a permit from epoch 1, everyone funded. */
let base: StoredRecord[];

beforeAll(async () => {
  const actors = await Promise.all([1, 2, 3, 4, 5, 6].map(() => actor()));
  [client, m1, m2, val, poor, stranger] = actors as [Actor, Actor, Actor, Actor, Actor, Actor];
  base = [
    await registration(config, m1, 1, 'miner'),
    await registration(config, m2, 2, 'miner'),
    await registration(config, val, 3, 'validator'),
    await registration(config, poor, 4, 'miner'),
    await claim(config, val, 6, 1_000_000_000_000n),
    await claim(config, client, 6, FUNDS),
    await claim(config, m1, 6, FUNDS),
    await claim(config, m2, 6, FUNDS),
    await claim(config, stranger, 6, FUNDS),
    await make(config, val, 'stake.add', 7, { hotkey: val.id, amount: '1000000000000' }),
  ];
});

/** Actors continue their chains from the base: each test signs on copies. */
const fork = (...as: Actor[]) => as.map((a) => ({ ...a }));
/** A record signed with `who`'s next sequence number, which `who` does not keep: one that is only checked. */
const probe = <K extends RecordKind>(who: Actor, kind: K, block: number, body: Body<K>) =>
  make(config, { ...who }, kind, block, body);

const openBody = (block: number, over: Partial<Body<'job.open'>> = {}): Body<'job.open'> => ({
  netuid: 1,
  model: MODEL,
  requests: 10,
  shards: 3,
  inputHash: INPUT,
  price: '100',
  maxTokens: 64,
  deadline: block + 5 * T,
  ...over,
});

/** Everything that exists: free balances, stake, what jobs hold, and what left circulation (dust, burns). */
function accounted(state: LedgerState): bigint {
  let total = state.dust + state.burned + state.forfeited + jobsHeld(state);
  for (const v of Object.values(state.balances)) total += v;
  for (const s of Object.values(state.stakes)) for (const v of Object.values(s)) total += v;
  return total;
}
const conserved = (state: LedgerState) => expect(accounted(state)).toBe(INITIAL + state.issued);

/**
 * The refusal code of `rec` after `records` (replayed to its block), checking that applying it to that state
 * changes nothing but its author's chain head, and that the replay refuses it with the same code.
 */
function refusal(records: StoredRecord[], rec: StoredRecord): string {
  const state = replay(config, records, rec.record.block).state;
  const before = stateText({ ...state, chains: {} });
  let code = 'accepted';
  try {
    applyRecord(state, config, rec.record, rec.id);
  } catch (err) {
    expect(err).toBeInstanceOf(RecordRefused);
    code = (err as RecordRefused).code;
  }
  if (code !== 'accepted') expect(stateText({ ...state, chains: {} })).toBe(before);
  const replayed = replay(config, [...records, rec], rec.record.block).refused[rec.id]?.code ?? 'accepted';
  expect(replayed).toBe(code);
  return code;
}

const jobOf = (r: Replay, id: string): JobState => r.state.jobs[id]!;

describe('shards', () => {
  it('split the requests into contiguous ranges whose payments sum to the deposit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 1, max: 256 }), (requests, n) => {
        const shards = Math.min(n, requests);
        const job = { requests, shards, price: 7n };
        let next = 0;
        let total = 0n;
        for (let k = 0; k < shards; k++) {
          const [start, end] = shardRange(requests, shards, k);
          expect(start).toBe(next);
          expect(end - start).toBeGreaterThanOrEqual(Math.floor(requests / shards));
          expect(end - start).toBeLessThanOrEqual(Math.ceil(requests / shards));
          next = end;
          total += shardPayment(job, k);
        }
        expect(next).toBe(requests);
        expect(total).toBe(7n * BigInt(requests));
      }),
    );
  });
});

describe('job.open', () => {
  it('takes price × requests from the client into the job, named by the record id', async () => {
    const [c] = fork(client);
    const open = await make(config, c!, 'job.open', 21, openBody(21));
    const r = replay(config, [...base, open], 21);
    const job = jobOf(r, open.id);
    expect(job).toMatchObject({ client: client.id, deposit: 1000n, paid: 0n, refunded: 0n, shards: 3 });
    expect(job.shardStates.map((s) => s.status)).toEqual(['open', 'open', 'open']);
    expect(r.state.balances[client.id]).toBe(FUNDS - 1000n);
    expect(jobHeld(job)).toEqual({ escrow: 1000n, bonds: 0n });
    conserved(r.state);
  });

  it('is refused on arrival for another model, or more shards than requests', async () => {
    const [c] = fork(client);
    const at = { nowBlock: 100, minBlock: 0 };
    const wrong = await make(config, c!, 'job.open', 21, openBody(21, { model: 'someone/else' }));
    await expect(checkRecord(wrong.record, config, at)).rejects.toMatchObject({ code: 'wrong-model' });
    const split = await make(config, c!, 'job.open', 21, openBody(21, { shards: 11 }));
    await expect(checkRecord(split.record, config, at)).rejects.toMatchObject({ code: 'malformed' });
    const missing = await make(config, c!, 'job.open', 21, openBody(21, { netuid: 7 }));
    await expect(checkRecord(missing.record, config, at)).rejects.toMatchObject({ code: 'unknown-subnet' });
    expect(refusal(base, wrong)).toBe('wrong-model'); // the replay judges it the same
  });

  it('refuses a deadline not after its block or beyond the bound, a deposit beyond the balance, and a fifth job', async () => {
    const [c, s] = fork(client, stranger);
    expect(refusal(base, await probe(c!, 'job.open', 21, openBody(21, { deadline: 21 })))).toBe('bad-deadline');
    const far = 21 + MAX_JOB_EPOCHS * T;
    expect(refusal(base, await probe(c!, 'job.open', 21, openBody(21, { deadline: far + 1 })))).toBe('bad-deadline');
    expect(refusal(base, await probe(c!, 'job.open', 21, openBody(21, { deadline: far })))).toBe('accepted');
    const rich = await probe(s!, 'job.open', 21, openBody(21, { price: FUNDS.toString() }));
    expect(refusal(base, rich)).toBe('overspend');
    const records = [...base];
    for (let k = 0; k < MAX_OPEN_JOBS_PER_CLIENT; k++)
      records.push(await make(config, c!, 'job.open', 22 + k, openBody(22 + k)));
    expect(refusal(records, await probe(c!, 'job.open', 30, openBody(30)))).toBe('job-limit');
  });

  it(`refuses a job beyond ${MAX_OPEN_JOBS} open in all`, async () => {
    const records = [...base];
    const clients = await Promise.all(
      Array.from({ length: MAX_OPEN_JOBS / MAX_OPEN_JOBS_PER_CLIENT + 1 }, () => actor()),
    );
    for (const who of clients) {
      records.push(await claim(config, who, 21, 10_000n));
      if (who !== clients.at(-1))
        for (let k = 0; k < MAX_OPEN_JOBS_PER_CLIENT; k++)
          records.push(await make(config, who, 'job.open', 22, openBody(22, { price: '1' })));
    }
    const r = replay(config, records, 22);
    expect(Object.keys(r.state.jobs)).toHaveLength(MAX_OPEN_JOBS);
    expect(refusal(records, await probe(clients.at(-1)!, 'job.open', 23, openBody(23, { price: '1' })))).toBe(
      'job-limit',
    );
  });
});

describe('claims, results and audits', () => {
  /** The client opens a job of 10 requests in 3 shards (3, 3 and 4 requests) at block 21. */
  async function opened() {
    const [c, a, b, v, p, s] = fork(client, m1, m2, val, poor, stranger);
    const open = await make(config, c!, 'job.open', 21, openBody(21));
    return { c: c!, a: a!, b: b!, v: v!, p: p!, s: s!, open, job: open.id, records: [...base, open] };
  }

  it('locks a bond of PENALTY_MULTIPLE times the shard payment, pays payment and bond back on a passed audit', async () => {
    const { a, v, job, records } = await opened();
    const pay = shardPayment({ requests: 10, shards: 3, price: 100n }, 2);
    expect(pay).toBe(400n); // shard 2 covers requests 6..9
    records.push(await make(config, a, 'job.claim', 22, { job, shard: 2 }));
    let r = replay(config, records, 22);
    expect(r.state.balances[m1.id]).toBe(FUNDS - PENALTY_MULTIPLE * pay);
    expect(jobOf(r, job).shardStates[2]).toEqual({
      status: 'claimed',
      miner: m1.id,
      bond: 800n,
      until: 22 + CLAIM_EPOCHS * T,
    });
    expect(jobHeld(jobOf(r, job))).toEqual({ escrow: 1000n, bonds: 800n });
    conserved(r.state);
    records.push(await make(config, a, 'job.result', 23, { job, shard: 2, resultsHash: RESULTS }));
    records.push(await make(config, v, 'job.audit', 24, { job, shard: 2, resultsHash: RESULTS, pass: true }));
    r = replay(config, records, 24);
    expect(r.state.balances[m1.id]).toBe(FUNDS + pay);
    expect(jobOf(r, job).shardStates[2]).toEqual({ status: 'paid', miner: m1.id, resultsHash: RESULTS });
    expect(jobOf(r, job).paid).toBe(400n);
    conserved(r.state);
  });

  it('refuses claims on no job, no such shard, a taken shard, from a key without a UID, beyond the limit or the balance', async () => {
    const { a, b, p, s, job, records } = await opened();
    const claimBy = (who: Actor, block: number, body: Body<'job.claim'>) => probe(who, 'job.claim', block, body);
    expect(refusal(records, await claimBy(a, 22, { job: 'ee'.repeat(32), shard: 0 }))).toBe('unknown-job');
    expect(refusal(records, await claimBy(a, 22, { job, shard: 3 }))).toBe('bad-shard');
    expect(refusal(records, await claimBy(s, 22, { job, shard: 0 }))).toBe('not-registered');
    expect(refusal(records, await claimBy(p, 22, { job, shard: 0 }))).toBe('overspend');
    records.push(await make(config, a, 'job.claim', 22, { job, shard: 0 }));
    expect(refusal(records, await claimBy(b, 23, { job, shard: 0 }))).toBe('shard-taken');

    // A job with more shards than one miner may hold at once.
    const [c] = fork(client);
    const big = await make(config, c!, 'job.open', 21, openBody(21, { shards: MAX_CLAIMS_PER_MINER + 1 }));
    const many = [...base, big];
    for (let k = 0; k < MAX_CLAIMS_PER_MINER; k++)
      many.push(await make(config, b, 'job.claim', 22, { job: big.id, shard: k }));
    expect(refusal(many, await claimBy(b, 23, { job: big.id, shard: MAX_CLAIMS_PER_MINER }))).toBe('claim-limit');
  });

  it('takes a result only from the live claim: not from another miner, not twice, not once the claim lapsed', async () => {
    const { a, b, job, records } = await opened();
    records.push(await make(config, a, 'job.claim', 22, { job, shard: 1 }));
    const result = { job, shard: 1, resultsHash: RESULTS };
    expect(refusal(records, await probe(b, 'job.result', 23, result))).toBe('not-claimant');
    expect(refusal(records, await probe(a, 'job.result', 22 + CLAIM_EPOCHS * T, result))).toBe('not-claimant');
    records.push(await make(config, a, 'job.result', 23, result));
    expect(refusal(records, await probe(a, 'job.result', 24, result))).toBe('not-claimant');
  });

  it('takes audits only from permitted validators of the subnet, of the published result, by neither miner nor client', async () => {
    const { a, b, c, v, s, job, records } = await opened();
    const audit = (who: Actor, block: number, over: Partial<Body<'job.audit'>> = {}) =>
      probe(who, 'job.audit', block, { job, shard: 0, resultsHash: RESULTS, pass: true, ...over });
    expect(refusal(records, await audit(v, 22))).toBe('bad-audit'); // nothing published yet
    records.push(await make(config, a, 'job.claim', 22, { job, shard: 0 }));
    records.push(await make(config, a, 'job.result', 23, { job, shard: 0, resultsHash: RESULTS }));
    expect(refusal(records, await audit(s, 24))).toBe('not-registered');
    expect(refusal(records, await audit(b, 24))).toBe('no-permit');
    expect(refusal(records, await audit(v, 24, { resultsHash: OTHER_RESULTS }))).toBe('bad-audit');
    expect(refusal(records, await audit(v, 24, { shard: 5 }))).toBe('bad-shard');
    expect(refusal(records, await audit(c, 24))).toBe('not-registered');

    // The validator also holds a UID on the subnet: it may claim (with the balance for the bond), but not audit
    // its own shard.
    records.push(await claim(config, v, 24, FUNDS));
    records.push(await make(config, v, 'job.claim', 24, { job, shard: 1 }));
    records.push(await make(config, v, 'job.result', 25, { job, shard: 1, resultsHash: RESULTS }));
    expect(refusal(records, await audit(v, 26, { shard: 1 }))).toBe('bad-audit');

    // A client that is itself a permitted validator may not audit its own job.
    const [v2] = fork(val);
    const funds = await claim(config, v2!, 23, FUNDS);
    const own2 = await make(config, v2!, 'job.open', 24, openBody(24));
    const selfRecords = [...base, funds, own2];
    const [m] = fork(m1);
    selfRecords.push(await make(config, m!, 'job.claim', 25, { job: own2.id, shard: 0 }));
    selfRecords.push(await make(config, m!, 'job.result', 26, { job: own2.id, shard: 0, resultsHash: RESULTS }));
    const audit2 = await probe(v2!, 'job.audit', 27, { job: own2.id, shard: 0, resultsHash: RESULTS, pass: true });
    expect(refusal(selfRecords, audit2)).toBe('bad-audit');
  });

  it('destroys the bond on a failed audit and reopens the shard for another miner, who is paid', async () => {
    const { a, b, v, job, records } = await opened();
    records.push(await make(config, a, 'job.claim', 22, { job, shard: 0 }));
    records.push(await make(config, a, 'job.result', 23, { job, shard: 0, resultsHash: RESULTS }));
    records.push(await make(config, v, 'job.audit', 24, { job, shard: 0, resultsHash: RESULTS, pass: false }));
    let r = replay(config, records, 24);
    expect(jobOf(r, job).shardStates[0]).toEqual({ status: 'open' });
    expect(r.state.balances[m1.id]).toBe(FUNDS - 600n);
    expect(r.state.forfeited).toBe(600n);
    expect(jobOf(r, job).forfeited).toBe(600n);
    conserved(r.state);
    // A second audit of the same result finds nothing to audit: the first decided.
    const again = await probe(v, 'job.audit', 25, { job, shard: 0, resultsHash: RESULTS, pass: true });
    expect(refusal(records, again)).toBe('bad-audit');
    records.push(await make(config, b, 'job.claim', 25, { job, shard: 0 }));
    records.push(await make(config, b, 'job.result', 26, { job, shard: 0, resultsHash: OTHER_RESULTS }));
    records.push(await make(config, v, 'job.audit', 27, { job, shard: 0, resultsHash: OTHER_RESULTS, pass: true }));
    r = replay(config, records, 27);
    expect(r.state.balances[m2.id]).toBe(FUNDS + 300n);
    expect(jobOf(r, job).paid).toBe(300n);
    conserved(r.state);
  });

  it('closes the job when every shard passed: the deposit is all paid, nothing returns', async () => {
    const { a, b, v, job, records } = await opened();
    // Each author's records go in block order: the claims, then the results, then the audits.
    const miners = [a, b, a];
    for (const [k, m] of miners.entries()) records.push(await make(config, m, 'job.claim', 22 + k, { job, shard: k }));
    for (const [k, m] of miners.entries())
      records.push(await make(config, m, 'job.result', 25 + k, { job, shard: k, resultsHash: RESULTS }));
    for (const k of [0, 1, 2])
      records.push(await make(config, v, 'job.audit', 28 + k, { job, shard: k, resultsHash: RESULTS, pass: true }));
    const r = replay(config, records, 40);
    expect(r.state.jobs[job]).toBeUndefined();
    expect(r.settledJobs).toHaveLength(1);
    expect(r.settledJobs[0]).toMatchObject({
      job,
      client: client.id,
      netuid: 1,
      deposit: 1000n,
      paid: 1000n,
      refunded: 0n,
      forfeited: 0n,
      cancelled: false,
      block: 30,
    });
    // The settlement carries the shards as they closed: who was paid, and for which results.
    expect(r.settledJobs[0]!.shardStates).toEqual(
      miners.map((m) => ({ status: 'paid', miner: m.id, resultsHash: RESULTS })),
    );
    expect(r.state.balances[client.id]).toBe(FUNDS - 1000n);
    expect(r.state.balances[m1.id]! + r.state.balances[m2.id]!).toBe(2n * FUNDS + 1000n);
    conserved(r.state);
    const late = await probe(v, 'job.audit', 41, { job, shard: 0, resultsHash: RESULTS, pass: true });
    expect(refusal(records, late)).toBe('unknown-job');
  });
});

describe('cancel, lapse, deadline and settlement', () => {
  async function opened(deadline = 21 + 5 * T) {
    const [c, a, b, v] = fork(client, m1, m2, val);
    const open = await make(config, c!, 'job.open', 21, openBody(21, { deadline }));
    return { c: c!, a: a!, b: b!, v: v!, job: open.id, records: [...base, open] };
  }

  it('cancel returns what nobody holds at once; a shard in flight finishes, then the job closes', async () => {
    const { c, a, b, v, job, records } = await opened();
    records.push(await make(config, a, 'job.claim', 22, { job, shard: 0 }));
    expect(refusal(records, await probe(b, 'job.cancel', 23, { job }))).toBe('not-client');
    records.push(await make(config, c, 'job.cancel', 23, { job }));
    let r = replay(config, records, 23);
    expect(r.state.balances[client.id]).toBe(FUNDS - 300n); // shards 1 and 2 (3 + 4 requests) came back
    expect(jobOf(r, job).shardStates.map((s) => s.status)).toEqual(['claimed', 'refunded', 'refunded']);
    expect(refusal(records, await probe(c, 'job.cancel', 24, { job }))).toBe('job-closed');
    expect(refusal(records, await probe(b, 'job.claim', 24, { job, shard: 1 }))).toBe('job-closed');
    records.push(await make(config, a, 'job.result', 24, { job, shard: 0, resultsHash: RESULTS }));
    records.push(await make(config, v, 'job.audit', 25, { job, shard: 0, resultsHash: RESULTS, pass: true }));
    r = replay(config, records, 25);
    expect(r.state.jobs[job]).toBeUndefined();
    expect(r.settledJobs[0]).toMatchObject({ paid: 300n, refunded: 700n, cancelled: true, block: 25 });
    expect(r.state.balances[client.id]).toBe(FUNDS - 300n);
    conserved(r.state);
  });

  it('a cancel with nothing in flight closes the job at once; a failed shard of a cancelled job is refunded', async () => {
    const { c, job, records } = await opened();
    const r = replay(config, [...records, await make(config, c, 'job.cancel', 22, { job })], 22);
    expect(r.state.jobs[job]).toBeUndefined();
    expect(r.state.balances[client.id]).toBe(FUNDS);
    expect(r.settledJobs[0]).toMatchObject({ paid: 0n, refunded: 1000n, cancelled: true });

    const o = await opened();
    o.records.push(await make(config, o.a, 'job.claim', 22, { job: o.job, shard: 0 }));
    o.records.push(await make(config, o.c, 'job.cancel', 23, { job: o.job }));
    o.records.push(await make(config, o.a, 'job.result', 24, { job: o.job, shard: 0, resultsHash: RESULTS }));
    o.records.push(
      await make(config, o.v, 'job.audit', 25, { job: o.job, shard: 0, resultsHash: RESULTS, pass: false }),
    );
    const failed = replay(config, o.records, 25);
    expect(failed.settledJobs[0]).toMatchObject({ paid: 0n, refunded: 1000n, forfeited: 600n, cancelled: true });
    expect(failed.state.balances[client.id]).toBe(FUNDS);
    expect(failed.state.balances[m1.id]).toBe(FUNDS - 600n);
    conserved(failed.state);
  });

  it('a claim without a result lapses: the bond is destroyed and the shard is claimable again', async () => {
    const { a, b, job, records } = await opened();
    records.push(await make(config, a, 'job.claim', 22, { job, shard: 0 }));
    const until = 22 + CLAIM_EPOCHS * T;
    let r = replay(config, records, until - 1);
    expect(jobOf(r, job).shardStates[0]!.status).toBe('claimed');
    expect(refusal(records, await probe(b, 'job.claim', until - 1, { job, shard: 0 }))).toBe('shard-taken');
    r = replay(config, records, until);
    expect(jobOf(r, job).shardStates[0]).toEqual({ status: 'open' });
    expect(r.state.forfeited).toBe(600n);
    conserved(r.state);
    records.push(await make(config, b, 'job.claim', until, { job, shard: 0 }));
    r = replay(config, records, until);
    expect(jobOf(r, job).shardStates[0]).toMatchObject({ status: 'claimed', miner: m2.id });
  });

  it('a claim never outlasts the deadline; then shards nobody holds return, and unaudited results at settlement', async () => {
    const deadline = 21 + T;
    const { a, b, c, v, job, records } = await opened(deadline);
    records.push(await make(config, a, 'job.claim', 22, { job, shard: 0 }));
    records.push(await make(config, b, 'job.claim', 23, { job, shard: 1 }));
    records.push(await make(config, b, 'job.result', 24, { job, shard: 1, resultsHash: RESULTS }));
    let r = replay(config, records, 24);
    expect(jobOf(r, job).shardStates[0]!.until).toBe(deadline);
    expect(refusal(records, await probe(b, 'job.claim', deadline, { job, shard: 2 }))).toBe('job-closed');
    expect(refusal(records, await probe(c, 'job.cancel', deadline, { job }))).toBe('job-closed');
    // At the deadline: shard 0's claim lapses (bond destroyed), shards 0 and 2 go back to the client.
    r = replay(config, records, deadline);
    expect(jobOf(r, job).shardStates.map((s) => s.status)).toEqual(['refunded', 'result', 'refunded']);
    expect(r.state.balances[client.id]).toBe(FUNDS - 300n);
    expect(r.state.forfeited).toBe(600n);
    conserved(r.state);
    // Audits are taken until the settle block; shard 1's result is never audited.
    const settle = deadline + AUDIT_EPOCHS * T;
    r = replay(config, records, settle - 1);
    expect(r.state.jobs[job]).toBeDefined();
    r = replay(config, records, settle);
    expect(r.state.jobs[job]).toBeUndefined();
    expect(r.settledJobs[0]).toMatchObject({ paid: 0n, refunded: 1000n, forfeited: 600n, block: settle });
    expect(r.state.balances[client.id]).toBe(FUNDS);
    expect(r.state.balances[m2.id]).toBe(FUNDS); // its bond came back: no audit found fault
    conserved(r.state);
    const late = await probe(v, 'job.audit', settle, { job, shard: 1, resultsHash: RESULTS, pass: true });
    expect(refusal(records, late)).toBe('unknown-job');
    // An audit inside the window still pays.
    const inTime = await probe(v, 'job.audit', settle - 1, { job, shard: 1, resultsHash: RESULTS, pass: true });
    r = replay(config, [...records, inTime], settle);
    expect(r.settledJobs[0]).toMatchObject({ paid: 300n, refunded: 700n });
  });
});

describe('the state text with jobs', () => {
  it('round-trips open jobs, writes nothing new for a ledger without jobs, and a base continues the same', async () => {
    const [c, a, b, v] = fork(client, m1, m2, val);
    const open = await make(config, c!, 'job.open', 21, openBody(21, { deadline: 21 + 4 * T }));
    const job = open.id;
    const records = [
      ...base,
      open,
      await make(config, a!, 'job.claim', 22, { job, shard: 0 }),
      await make(config, b!, 'job.claim', 23, { job, shard: 1 }),
      await make(config, b!, 'job.result', 24, { job, shard: 1, resultsHash: RESULTS }),
      await make(config, v!, 'job.audit', 25, { job, shard: 1, resultsHash: RESULTS, pass: false }),
      await make(config, a!, 'job.result', 41, { job, shard: 0, resultsHash: RESULTS }),
      await make(config, v!, 'job.audit', 61, { job, shard: 0, resultsHash: RESULTS, pass: true }),
    ];
    const full = replay(config, records, 8 * T);
    const withJob = full.recentStates.get(1)!;
    expect(withJob).toMatch(new RegExp(`^jobs/${job}\t`, 'm'));
    expect(withJob).toMatch(/"forfeited":"600"/);
    for (const [epoch, text] of full.recentStates) {
      const state = stateFromText(text);
      expect(stateText(state)).toBe(text);
      expect(new StateDigest().digest(state).bodyHash).toBe(full.chain[epoch]!.bodyHash);
      expect(bodyHashOfText(text)).toBe(full.chain[epoch]!.bodyHash);
      conserved(state);
      // A replay from this close's state reaches the same end as the one from genesis.
      const from = replay(config, records, 8 * T, { epoch, stateText: text, chain: full.chain.slice(0, epoch + 1) });
      expect(stateText(from.state)).toBe(stateText(full.state));
      expect(from.chain).toEqual(full.chain);
    }
    // Without jobs the ledger line is what it was before jobs existed.
    expect(stateText(replay(config, base, 2 * T).state)).not.toMatch(/forfeited|^jobs\//m);
    expect(() => stateFromText(withJob.replace(`jobs/${job}`, 'jobs/xyz'))).toThrow(/unknown path|after the one/);
  });
});

describe('admission of job records', () => {
  it('admits what the replay would take and keeps out what it certainly refuses', async () => {
    const [c, a, p, s, v] = fork(client, m1, poor, stranger, val);
    const r = replay(config, base, 40);
    const adm = new Admission(config);
    adm.rebase({ ...r.state, closeThrough: 40, nominations: r.state.stakes, checkpoints: [] });
    const code = (rec: StoredRecord) => {
      try {
        adm.admit(rec.record, rec.id);
        return 'admitted';
      } catch (err) {
        return (err as RecordRefused).code;
      }
    };
    const open = await make(config, c!, 'job.open', 41, openBody(41));
    const job = open.id;
    // A claim may overtake the open it names (another author's record): refused as uncertain, then admitted.
    expect(code(await probe(a!, 'job.claim', 42, { job, shard: 0 }))).toBe('unknown-job');
    expect(code(open)).toBe('admitted');
    expect(code(await make(config, a!, 'job.claim', 42, { job, shard: 0 }))).toBe('admitted');
    expect(code(await probe(a!, 'job.claim', 42, { job, shard: 9 }))).toBe('bad-shard');
    expect(code(await probe(p!, 'job.claim', 42, { job, shard: 1 }))).toBe('overspend');
    expect(code(await probe(s!, 'job.claim', 42, { job, shard: 1 }))).toBe('not-registered');
    expect(code(await probe(s!, 'job.cancel', 42, { job }))).toBe('not-client');
    expect(code(await probe(s!, 'job.audit', 42, { job, shard: 0, resultsHash: RESULTS, pass: true }))).toBe(
      'not-registered',
    );
    expect(code(await probe(v!, 'job.audit', 42, { job, shard: 0, resultsHash: RESULTS, pass: true }))).toBe(
      'admitted',
    );
    expect(code(await probe(s!, 'job.open', 42, openBody(42, { price: FUNDS.toString() })))).toBe('overspend');
    expect(code(await probe(s!, 'job.open', 42, openBody(42, { deadline: 42 })))).toBe('bad-deadline');
    // The client's pending open counts against its limit of open jobs.
    for (let k = 1; k < MAX_OPEN_JOBS_PER_CLIENT; k++)
      expect(code(await make(config, c!, 'job.open', 42 + k, openBody(42 + k, { price: '1' })))).toBe('admitted');
    expect(code(await probe(c!, 'job.open', 50, openBody(50, { price: '1' })))).toBe('job-limit');
  });
});

/** A seeded Fisher-Yates shuffle. */
function shuffle<T>(list: readonly T[], seed: number): T[] {
  const out = [...list];
  let x = seed | 1;
  for (let i = out.length - 1; i > 0; i--) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('properties', () => {
  /**
   * Ops name their targets by index into what was signed so far (jobs opened, claims, results), so that most
   * records hit something real; `stray` sends one at a random target instead (mostly refused).
   */
  type Op =
    | { op: 'open'; who: number; requests: number; shards: number; price: number; deadline: number }
    | { op: 'claim'; who: number; job: number; shard: number }
    | { op: 'result'; pick: number; hash: number; stray: boolean }
    | { op: 'audit'; pick: number; who: number; pass: boolean; stray: boolean }
    | { op: 'cancel'; who: number; job: number }
    | { op: 'wait'; blocks: number };

  const opArb: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant('open' as const),
        who: fc.nat(1),
        requests: fc.integer({ min: 1, max: 12 }),
        shards: fc.integer({ min: 1, max: 4 }),
        price: fc.integer({ min: 1, max: 1000 }),
        deadline: fc.oneof(
          { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 * T }) },
          { weight: 3, arbitrary: fc.integer({ min: 2 * T, max: 4 * T }) },
        ),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({ op: fc.constant('claim' as const), who: fc.nat(3), job: fc.nat(7), shard: fc.nat(4) }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant('result' as const),
        pick: fc.nat(7),
        hash: fc.nat(1),
        stray: fc.nat(5).map((x) => x === 0),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant('audit' as const),
        pick: fc.nat(7),
        who: fc.nat(5),
        pass: fc.boolean(),
        stray: fc.nat(3).map((x) => x === 0),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('cancel' as const), who: fc.nat(2), job: fc.nat(7) }) },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant('wait' as const),
        blocks: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 50 })),
      }),
    },
  );

  /** Up to `n` ops, starting with an open (most ops act on a job). */
  const opsArb = (n: number) =>
    fc
      .tuple(
        opArb.filter((o) => o.op === 'open'),
        fc.array(opArb, { minLength: 5, maxLength: n, size: 'max' }),
      )
      .map(([first, rest]) => [first, ...rest]);

  /**
   * Sign a sequence of ops from block 21 on. Clients: the client and the stranger. Claims come from m1, m2, the
   * validator (no balance for a bond) or the client (no UID); audits mostly from the validator, else from a miner
   * (no permit) or the client.
   */
  async function sign(ops: Op[]): Promise<{ records: StoredRecord[]; opens: StoredRecord[]; end: number }> {
    const [c, s, a, b, v] = fork(client, stranger, m1, m2, val) as [Actor, Actor, Actor, Actor, Actor];
    const clients = [c, s, a];
    const claimants = [a, b, v, c];
    const auditors = [v, v, v, v, a, c];
    const records = [...base];
    const opens: { rec: StoredRecord; shards: number }[] = [];
    const claims: { who: Actor; job: string; shard: number }[] = [];
    const results: { job: string; shard: number; hash: string }[] = [];
    const hashes = [RESULTS, OTHER_RESULTS];
    const nowhere = 'ee'.repeat(32);
    /** One of the last four of `list` (what a miner or validator would act on next), or null. */
    const recent = <T>(list: T[], k: number): T | null =>
      list.length ? list[list.length - 1 - (k % Math.min(4, list.length))]! : null;
    let block = 21;
    for (const o of ops) {
      if (o.op === 'wait') {
        block += o.blocks;
        continue;
      }
      let rec: StoredRecord;
      if (o.op === 'open') {
        const shards = Math.min(o.shards, o.requests);
        rec = await make(config, clients[o.who]!, 'job.open', block, {
          ...openBody(block, { requests: o.requests, shards, price: String(o.price) }),
          deadline: block + o.deadline,
        });
        opens.push({ rec, shards });
      } else if (o.op === 'claim') {
        const target = recent(opens, o.job);
        const job = target?.rec.id ?? nowhere;
        const shard = target && o.shard < 4 ? o.shard % target.shards : o.shard; // 4: a shard beyond the job
        const who = claimants[o.who]!;
        rec = await make(config, who, 'job.claim', block, { job, shard });
        if (who === a || who === b) claims.push({ who, job, shard });
      } else if (o.op === 'result') {
        const claim = recent(claims, o.pick);
        const who = o.stray || !claim ? claimants[o.pick % claimants.length]! : claim.who;
        const job = claim?.job ?? nowhere;
        const shard = claim?.shard ?? 0;
        rec = await make(config, who, 'job.result', block, { job, shard, resultsHash: hashes[o.hash]! });
        if (!o.stray) results.push({ job, shard, hash: hashes[o.hash]! });
      } else if (o.op === 'audit') {
        const result = recent(results, o.pick);
        const job = result?.job ?? nowhere;
        const hash = o.stray ? hashes[o.pick % 2]! : (result?.hash ?? RESULTS);
        rec = await make(config, auditors[o.who]!, 'job.audit', block, {
          job,
          shard: result?.shard ?? 0,
          resultsHash: hash,
          pass: o.pass,
        });
      } else {
        const job = recent(opens, o.job)?.rec.id ?? nowhere;
        rec = await make(config, clients[o.who]!, 'job.cancel', block, { job });
      }
      records.push(rec);
      // Records of one block go in author order: the next op comes a block later, after this one.
      block++;
    }
    return { records, opens: opens.map((o) => o.rec), end: block };
  }

  it('never creates or destroys rao but by the rules; every closed job paid + refunded its deposit; same in any order and from any base', async () => {
    await fc.assert(
      fc.asyncProperty(opsArb(50), fc.nat(), async (ops, seed) => {
        const { records, opens, end } = await sign(ops);
        // Far enough for every deadline (at most 4 epochs after its open) and settlement to pass.
        const through = (Math.ceil(end / T) + 4 + AUDIT_EPOCHS + 1) * T;
        const r = replay(config, records, through);
        conserved(r.state);
        // Nothing stays open past its settlement; every job that opened closed exactly once, its deposit whole.
        expect(r.state.jobs).toEqual({});
        const opened = opens.filter((o) => !r.refused[o.id]);
        expect(r.settledJobs.map((s) => s.job).sort()).toEqual(opened.map((o) => o.id).sort());
        let forfeited = 0n;
        for (const s of r.settledJobs) {
          expect(s.paid + s.refunded).toBe(s.deposit);
          expect(s.paid >= 0n && s.refunded >= 0n).toBe(true);
          forfeited += s.forfeited;
        }
        expect(forfeited).toBe(r.state.forfeited);
        // At every close the replay kept, the supply is whole and no job's escrow is negative.
        for (const text of r.recentStates.values()) {
          const state = stateFromText(text);
          conserved(state);
          for (const job of Object.values(state.jobs)) {
            const { escrow, bonds } = jobHeld(job);
            expect(escrow >= 0n && bonds >= 0n).toBe(true);
            expect(job.paid + job.refunded + escrow).toBe(job.deposit);
          }
        }
        // Any arrival order (with duplicates), and a replay from any kept close, give the same state.
        const rand = shuffle(records, seed);
        const shuffled = replay(config, [...rand, ...rand.slice(0, 5)], through);
        expect(stateText(shuffled.state)).toBe(stateText(r.state));
        expect(shuffled.chain).toEqual(r.chain);
        expect(shuffled.refused).toEqual(r.refused);
        const epochs = [...r.recentStates.keys()];
        const epoch = epochs[seed % epochs.length]!;
        const fromBase = replay(config, records, through, {
          epoch,
          stateText: r.recentStates.get(epoch)!,
          chain: r.chain.slice(0, epoch + 1),
        });
        expect(stateText(fromBase.state)).toBe(stateText(r.state));
        expect(fromBase.chain).toEqual(r.chain);
      }),
      { numRuns: 150 },
    );
  });

  it('keeps the supply whole at every block, whatever stops the replay there', async () => {
    await fc.assert(
      fc.asyncProperty(opsArb(25), async (ops) => {
        const { records, end } = await sign(ops);
        for (let b = 21; b <= end + 2 * T; b += 3) {
          const held = records.filter((x) => x.record.block <= b);
          const state = replay(config, held, b).state;
          conserved(state);
          for (const job of Object.values(state.jobs)) expect(jobHeld(job).escrow >= 0n).toBe(true);
        }
      }),
      { numRuns: 25 },
    );
  });
});
