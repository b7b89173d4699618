/**
 * Batch jobs, service against service (docs/jobs.md): a client (JobClient), miners (JobMiner over a real Miner)
 * and a validator (JobAuditor) with a real ledger (each node signs with its own key through its own RecordBook and
 * Admission into one store, and the real replay makes the snapshot every node reads), real Blobs moving the files,
 * and a real model: the honest miner generates, and the validator checks, with webtensor/tiny-llama on
 * onnxruntime-web WASM. Only the transport (FakeRpcRouter: a request goes straight to the other node's handler, every
 * value through JSON) and the clock (the test moves it and replays, as every node's Consensus would) are stand-ins,
 * and the test drives each service's step itself (core/testing/job-net.ts). Restarts: a node made again on the same
 * key, ledger, files and job memory, with new services.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { NodeError } from '../../shared/errors.ts';
import type { InferenceEngine } from '../../shared/inference/engine.ts';
import { jobFileBytes, jobRequestId, type JobLine } from '../../shared/inference/job-files.ts';
import { checkResult, type GenerateResult } from '../../shared/inference/protocol.ts';
import { settleBlock, shardBond, type JobState } from '../../shared/ledger/jobs.ts';
import type { StoredRecord } from '../../shared/ledger/replay.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { actor, claim, make, registration, smallConfig, type Actor } from '../../shared/ledger/testing.ts';
import { MemoryBlobStore } from '../chunked-blob-store.ts';
import { NodeInferenceEngine } from '../nodejs/inference.ts';
import { waitFor } from '../store.ts';
import { GENESIS_MS } from '../testing/fakes.ts';
import { jobAuditorOn, jobClientOn, jobMinerOn, JobNet } from '../testing/job-net.ts';
import { FETCH_ATTEMPTS } from './job-auditor.ts';
import { type JobOutputLine, type OpenJob } from './job-client.ts';
import { MemoryJobMemoryStore } from './job-memory.ts';

const config = smallConfig({ genesisMs: GENESIS_MS });
const subnet = config.subnets[0]!;
const MODEL = subnet.model;
const FUNDS = 1_000_000_000n;
const PRICE = 1000n;

/** Six real requests: greedy, seeded sampling (with top-k and top-p), a stop string. */
const REQUESTS: JobLine[] = [
  { custom_id: 'tale-1', params: { model: MODEL, prompt: 'Once upon a time', maxNewTokens: 12 } },
  {
    custom_id: 'tale-2',
    params: { model: MODEL, prompt: 'The little dog', maxNewTokens: 8, sampling: { seed: 7, temperature: 0.8 } },
  },
  { custom_id: 'tale-3', params: { model: MODEL, prompt: 'In a small town', maxNewTokens: 16, stop: ['.'] } },
  { custom_id: 'tale-4', params: { model: MODEL, prompt: 'She opened the door', maxNewTokens: 10 } },
  {
    custom_id: 'tale-5',
    params: {
      model: MODEL,
      prompt: 'One day',
      maxNewTokens: 8,
      sampling: { seed: 3, temperature: 1, topK: 8, topP: 0.9 },
    },
  },
  { custom_id: 'tale-6', params: { model: MODEL, prompt: 'The end of the story', maxNewTokens: 6 } },
];
const jsonl = (lines: readonly unknown[]) => lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
const DEPOSIT = PRICE * BigInt(REQUESTS.length);

let client: Actor;
let honest: Actor;
let cheat: Actor;
let forger: Actor;
let poor: Actor;
let validator: Actor;
/** Miners and a validator registered in epoch 0 (the validator staked: its permit comes at the first close). */
let base: StoredRecord[];
const minerEngine = new NodeInferenceEngine();
const validatorEngine = new NodeInferenceEngine();

/** An engine for a miner that makes its answers up: it never runs a model. */
const noModel: InferenceEngine = {
  load: async (modelId) => ({ modelId, ms: 0, device: 'wasm', reason: 'made-up answers need no model' }),
  generate: async () => {
    throw new Error('this miner makes its answers up');
  },
  score: async () => {
    throw new Error('this miner makes its answers up');
  },
  countTokens: async () => {
    throw new Error('this miner makes its answers up');
  },
  cancel: async () => {},
};

beforeAll(async () => {
  const actors = await Promise.all(Array.from({ length: 6 }, () => actor()));
  [client, honest, cheat, forger, poor, validator] = actors as [Actor, Actor, Actor, Actor, Actor, Actor];
  base = [
    await registration(config, honest, 1, 'miner'),
    await registration(config, cheat, 2, 'miner'),
    await registration(config, forger, 3, 'miner'),
    await registration(config, poor, 4, 'miner'),
    await registration(config, validator, 5, 'validator'),
    await claim(config, validator, 6, 1_000_000_000_000n),
    ...(await Promise.all([client, honest, cheat, forger].map((a) => claim(config, a, 6, FUNDS)))),
    await make(config, validator, 'stake.add', 7, { hotkey: validator.id, amount: '1000000000000' }),
  ];
  await minerEngine.load(MODEL);
  await validatorEngine.load(MODEL);
}, 60_000);

const newNet = () => JobNet.create(config, base);

const clientNode = (net: JobNet, options: Parameters<typeof jobClientOn>[2] = {}) => jobClientOn(net, client, options);

/** A miner serving the subnet's model; `fault` as the Miner's, `tamper` rewrites what it asks its Miner. */
const minerNode = (net: JobNet, who: Actor, options: Parameters<typeof jobMinerOn>[4] = {}) =>
  jobMinerOn(net, who, MODEL, options.fault ? noModel : minerEngine, options);

const validatorNode = (net: JobNet) => jobAuditorOn(net, validator, subnet, validatorEngine);

const openJob = (over: Partial<OpenJob> = {}): OpenJob => ({
  netuid: 1,
  lines: jsonl(REQUESTS),
  price: PRICE,
  deadlineEpochs: 4,
  shards: 2,
  ...over,
});

const statuses = (snap: LedgerSnapshot, id: string) => snap.jobs?.[id]?.shardStates.map((s) => s.status);
const recordsOf = async (net: JobNet, kind: string) => (await net.store.all()).filter((r) => r.kind === kind);
const resultOf = (line: JobOutputLine): GenerateResult => {
  if (!('result' in line)) throw new Error(`${line.custom_id} has no result: ${line.error.message}`);
  return line.result;
};

describe('a batch job, service against service', () => {
  it('pays the honest miner, burns the bond of a miner that made its answers up and gives its shard to the honest one; the client gets every answer in order for price × requests', async () => {
    const started = performance.now();
    const net = await newNet();
    const c = await clientNode(net);
    const good = await minerNode(net, honest);
    const bad = await minerNode(net, cheat, { fault: 'random' });
    const v = await validatorNode(net);
    const before = net.snapshot.get()!.balances;

    const id = await c.jobs.open(openJob());
    expect(c.jobs.status(id)).toMatchObject({ phase: 'pending', requests: 6, deposit: DEPOSIT, client: client.id });
    await net.at(31);
    expect(c.jobs.status(id)).toMatchObject({ phase: 'open' });
    expect(c.jobs.state.get().jobs.map((j) => j.id)).toEqual([id]);

    // The honest miner fetches the job file from the client, checks it, and claims shard 0: one claim at a time.
    await good.jobs.step();
    await good.jobs.step();
    expect(good.jobs.state.get().current).toMatchObject({ job: id, shard: 0, phase: 'claimed' });
    expect(await recordsOf(net, 'job.claim')).toHaveLength(1);
    await net.at(32);
    // Shard 0 is taken: the cheat claims shard 1.
    await bad.jobs.step();
    expect(bad.jobs.state.get().current).toMatchObject({ job: id, shard: 1 });
    await net.at(33);
    // Both claims are confirmed: each generates (the cheat makes its tokens up), serves and publishes its results.
    await good.jobs.step();
    await bad.jobs.step();
    expect([good.jobs.state.get().published, bad.jobs.state.get().published]).toEqual([1, 1]);
    let snap = await net.at(34);
    expect(statuses(snap, id)).toEqual(['result', 'result']);

    // The validator audits both: the honest shard passes, the made-up one fails stage 2 on its sample.
    await v.audits.step();
    expect(v.audits.state.get().last).toMatchObject({ job: id, shard: 0, pass: true });
    await v.audits.step();
    expect(v.audits.state.get().last).toMatchObject({ job: id, shard: 1, pass: false });
    expect(v.audits.state.get().last!.reason).toMatch(/^line \d \(request \d\): /);
    expect(v.audits.state.get()).toMatchObject({ passed: 1, failed: 1 });
    snap = await net.at(35);
    const bond = shardBond(snap.jobs![id]!, 1);
    expect(bond).toBe(2n * 3n * PRICE);
    expect(statuses(snap, id)).toEqual(['paid', 'open']);
    expect(snap.jobs![id]!.forfeited).toBe(bond);
    expect(snap.balances[cheat.id]).toBe(before[cheat.id]! - bond);

    // The shard is open again, and the honest miner takes it.
    await good.jobs.step();
    await net.at(36);
    await good.jobs.step();
    await net.at(37);
    await v.audits.step();
    snap = await net.at(38);
    expect(snap.jobs?.[id]).toBeUndefined();
    expect(snap.settledJobs!.find((s) => s.job === id)).toMatchObject({
      deposit: DEPOSIT,
      paid: DEPOSIT,
      refunded: 0n,
      forfeited: bond,
      cancelled: false,
    });
    // Exactly price × requests left the client, and reached the miner that did the work (its bonds came back).
    expect(snap.balances[client.id]).toBe(before[client.id]! - DEPOSIT);
    expect(snap.balances[honest.id]).toBe(before[honest.id]! + DEPOSIT);
    expect(c.jobs.status(id)).toMatchObject({ phase: 'closed', paid: DEPOSIT, refunded: 0n });

    const out = await c.jobs.results(id);
    expect(out.map((l) => l.custom_id)).toEqual(REQUESTS.map((r) => r.custom_id));
    for (const [k, line] of out.entries()) {
      const result = resultOf(line);
      const params = REQUESTS[k]!.params;
      expect(await checkResult(result, { miner: honest.id, requestId: jobRequestId(id, k), params })).toBeNull();
      // The answer is the model's own: the same tokens as generating it here.
      expect(result.tokenIds).toEqual((await minerEngine.generate(params)).tokenIds);
    }
    // The job file is no longer served once the job closed; the miner keeps its results for the client.
    expect(c.blobs.isServed(snap.settledJobs![0]!.inputHash)).toBe(false);
    console.log(`a 6-request job through two miners and an audit each: ${Math.round(performance.now() - started)} ms`);
  });

  it('fails results signed over other params, and results whose bytes do not hash to the published name; a cancel then refunds everything', async () => {
    const net = await newNet();
    const c = await clientNode(net);
    const twisted = await minerNode(net, forger, { tamper: (prompt) => `${prompt} and then` });
    const good = await minerNode(net, honest);
    const v = await validatorNode(net);
    const before = net.snapshot.get()!.balances;
    const id = await c.jobs.open(openJob());
    await net.at(31);
    await twisted.jobs.step();
    await net.at(32);
    await good.jobs.step();
    await net.at(33);
    await twisted.jobs.step();
    await good.jobs.step();
    // What the honest miner serves reaches the validator with a byte changed.
    net.garbled.add(honest.id);
    await net.at(34);
    await v.audits.step();
    expect(v.audits.state.get().last).toMatchObject({ shard: 0, pass: false });
    expect(v.audits.state.get().last!.reason).toMatch(/line 1: the result answers other params than the ones asked/);
    await v.audits.step();
    expect(v.audits.state.get().last).toMatchObject({ shard: 1, pass: false });
    expect(v.audits.state.get().last!.reason).toMatch(/do not check out: .*hash to/);
    let snap = await net.at(35);
    expect(statuses(snap, id)).toEqual(['open', 'open']);
    const bonds = shardBond(snap.jobs![id]!, 0) + shardBond(snap.jobs![id]!, 1);
    expect(snap.jobs![id]!.forfeited).toBe(bonds);

    await c.jobs.cancel(id);
    snap = await net.at(36);
    expect(snap.jobs?.[id]).toBeUndefined();
    expect(snap.settledJobs![0]).toMatchObject({ paid: 0n, refunded: DEPOSIT, forfeited: bonds, cancelled: true });
    expect(snap.balances[client.id]).toBe(before[client.id]!);
    const out = await c.jobs.results(id);
    expect(out.map((l) => ('error' in l ? l.error.code : 'result'))).toEqual(Array(6).fill('refunded'));
  });

  it('a cancel refunds the shards nobody holds at once; a shard in flight still finishes and is paid', async () => {
    const net = await newNet();
    const c = await clientNode(net);
    const good = await minerNode(net, honest);
    const v = await validatorNode(net);
    const before = net.snapshot.get()!.balances;
    const id = await c.jobs.open(openJob({ shards: 3 }));
    await expect(c.jobs.cancel(id)).rejects.toThrow(/not open yet/);
    await net.at(31);
    await good.jobs.step();
    await net.at(32);
    await c.jobs.cancel(id);
    let snap = await net.at(33);
    expect(statuses(snap, id)).toEqual(['claimed', 'refunded', 'refunded']);
    expect(snap.balances[client.id]).toBe(before[client.id]! - 2n * PRICE);
    await expect(c.jobs.cancel(id)).rejects.toThrow(/cancelled already/);

    await good.jobs.step();
    await net.at(34);
    await v.audits.step();
    snap = await net.at(35);
    expect(snap.settledJobs![0]).toMatchObject({ paid: 2n * PRICE, refunded: 4n * PRICE, cancelled: true });
    expect(snap.balances[client.id]).toBe(before[client.id]! - 2n * PRICE);
    const out = await c.jobs.results(id);
    expect(out.map((l) => ('error' in l ? l.error.code : 'result'))).toEqual([
      'result',
      'result',
      'refunded',
      'refunded',
      'refunded',
      'refunded',
    ]);
    expect(resultOf(out[1]!).requestId).toBe(jobRequestId(id, 1));
    await expect(c.jobs.cancel(id)).rejects.toThrow(/no open job/);
  });

  it("audits a shard while the job's client cannot be reached (stopped a while): the shard's miner serves the job file", async () => {
    const net = await newNet();
    const c = await clientNode(net);
    const good = await minerNode(net, honest);
    const v = await validatorNode(net);
    const id = await c.jobs.open(openJob({ shards: 1 }));
    await net.at(31);
    await good.jobs.step();
    await net.at(32);
    await good.jobs.step();
    const inputHash = net.snapshot.get()!.jobs![id]!.inputHash;
    expect(good.blobs.isServed(inputHash)).toBe(true);
    net.down.add(client.id);
    await net.at(33);
    await v.audits.step();
    expect(v.audits.state.get().last).toMatchObject({ job: id, shard: 0, pass: true });
    const snap = await net.at(34);
    expect(snap.settledJobs!.find((s) => s.job === id)).toMatchObject({ paid: DEPOSIT });
    // The job closed: the miner serves its results for the client a while, the job file no more.
    await good.jobs.step();
    expect(good.blobs.isServed(inputHash)).toBe(false);
    expect(good.blobs.isServed(snap.settledJobs![0]!.shardStates[0]!.resultsHash!)).toBe(true);
  });

  it('leaves a miner it cannot reach to the settle rule (refund, bond back), and returns unclaimed shards at the deadline', async () => {
    const net = await newNet();
    const c = await clientNode(net);
    const good = await minerNode(net, honest);
    const v = await validatorNode(net);
    const before = net.snapshot.get()!.balances;
    const id = await c.jobs.open(openJob({ deadlineEpochs: 1 }));
    await net.at(31);
    await good.jobs.step();
    await net.at(32);
    await good.jobs.step();
    net.down.add(honest.id);
    for (let k = 0; k < FETCH_ATTEMPTS + 1; k++) {
      await net.at(33 + 2 * k);
      await v.audits.step();
    }
    expect(v.audits.state.get()).toMatchObject({ passed: 0, failed: 0, leftToSettle: 1 });
    expect(v.audits.state.get().lastError).toMatch(/could not reach .*left to the settle rule/);
    expect(await recordsOf(net, 'job.audit')).toHaveLength(0);

    const job: JobState = net.snapshot.get()!.jobs![id]!;
    let snap = await net.at(job.deadline + config.graceBlocks);
    expect(statuses(snap, id)).toEqual(['result', 'refunded']);
    snap = await net.at(settleBlock(config, job) + config.graceBlocks);
    expect(snap.jobs?.[id]).toBeUndefined();
    expect(snap.settledJobs!.find((s) => s.job === id)).toMatchObject({ paid: 0n, refunded: DEPOSIT, forfeited: 0n });
    expect(snap.balances[client.id]).toBe(before[client.id]!);
    // Closed, as the client saw it (the snapshot reports a settlement only for a while: the client keeps it).
    expect(c.jobs.status(id)).toMatchObject({ phase: 'closed', refunded: DEPOSIT });
    expect(c.jobs.state.get().jobs[0]).toMatchObject({ id, phase: 'closed' });
  });
});

describe('restarts', () => {
  it('a miner stopped mid-shard and started again on the same key and files takes its claim up again, finishes before the claim ends and is paid', async () => {
    const net = await newNet();
    const c = await clientNode(net);
    const files = new MemoryBlobStore();
    const first = await minerNode(net, honest, { blobStore: files });
    const v = await validatorNode(net);
    const before = net.snapshot.get()!.balances;
    const id = await c.jobs.open(openJob({ shards: 1 }));
    await net.at(31);
    await first.jobs.step();
    await net.at(32);
    // It generates; the node stops after the first answer.
    const stepping = first.jobs.step();
    await waitFor(first.jobs.state, (s) => (s.current?.done ?? 0) >= 1);
    first.jobs.stop();
    await stepping;
    expect(first.jobs.state.get()).toMatchObject({ current: null, published: 0, dropped: 0 });
    expect(first.jobs.state.get().lastError).toMatch(/cancelled.*\(stopped; taken up again at the next start/);
    expect(statuses(await net.at(33), id)).toEqual(['claimed']);
    expect(await recordsOf(net, 'job.result')).toHaveLength(0);

    // Started again: new services, nothing of the old ones' memory; the same key, ledger and files.
    const again = await minerNode(net, honest, { blobStore: files });
    await net.replay();
    await again.jobs.step();
    expect(again.jobs.state.get()).toMatchObject({ resumed: 1, published: 1, current: null });
    // Its result waits for the replay: a pass meanwhile does not take the shard up a second time.
    await again.jobs.step();
    expect(again.jobs.state.get()).toMatchObject({ resumed: 1, published: 1 });
    let snap = await net.at(34);
    expect(statuses(snap, id)).toEqual(['result']);
    await v.audits.step();
    expect(v.audits.state.get().last).toMatchObject({ job: id, shard: 0, pass: true });
    snap = await net.at(35);
    expect(snap.settledJobs!.find((s) => s.job === id)).toMatchObject({ paid: DEPOSIT, forfeited: 0n });
    expect(snap.balances[honest.id]).toBe(before[honest.id]! + DEPOSIT);
    const out = await c.jobs.results(id);
    for (const [k, line] of out.entries())
      expect(resultOf(line).tokenIds).toEqual((await minerEngine.generate(REQUESTS[k]!.params)).tokenIds);
  });

  it('a miner started again too late to finish its shard by the rate rule leaves the claim to lapse', async () => {
    const net = await newNet();
    const c = await clientNode(net);
    const files = new MemoryBlobStore();
    const first = await minerNode(net, honest, { blobStore: files });
    const id = await c.jobs.open(openJob({ shards: 3 }));
    await net.at(31);
    await first.jobs.step();
    const until = (await net.at(32)).jobs![id]!.shardStates[0]!.until!;
    first.jobs.stop();
    // Started again 5 blocks before the claim ends: at 5 tokens a second the shard's 20 tokens need twice 4 s.
    await net.at(until - 5);
    const late = await minerNode(net, honest, { blobStore: files });
    await late.jobs.step();
    expect(late.jobs.state.get().resumed).toBe(0);
    expect(late.jobs.state.get().lastError).toMatch(
      /^shard 0 of job .*: 20 tokens would take 8000 ms; the claim has left 4000$/,
    );
    // It went on to the next open shard instead; shard 0 lapses.
    expect(late.jobs.state.get().current).toMatchObject({ job: id, shard: 1, phase: 'claimed' });
    const snap = await net.at(until + config.graceBlocks);
    expect(statuses(snap, id)).toEqual(['open', 'claimed', 'open']);
    expect(snap.jobs![id]!.forfeited).toBe(shardBond(snap.jobs![id]!, 0));
  });

  it('a client started again after its job closed still knows what the job came to and returns its results, from what it kept', async () => {
    const net = await newNet();
    const memory = new MemoryJobMemoryStore();
    const files = new MemoryBlobStore();
    const c = await clientNode(net, { memory, blobStore: files });
    const good = await minerNode(net, honest);
    const v = await validatorNode(net);
    const id = await c.jobs.open(openJob());
    expect(memory.values.has(id)).toBe(true);
    await net.at(31);
    await good.jobs.step();
    await net.at(32);
    await good.jobs.step();
    await good.jobs.step();
    await net.at(33);
    await good.jobs.step();
    await net.at(34);
    await v.audits.step();
    await v.audits.step();
    await net.at(35);
    const seen = c.jobs.status(id)!;
    expect(seen).toMatchObject({ phase: 'closed', paid: DEPOSIT });
    await vi.waitFor(() => expect(memory.values.get(id)).toContain('"phase":"closed"'));
    c.jobs.stop();

    // The node's replay now continues from a state after the close: it no longer reports the settlement.
    net.reportSettledAfter = net.block;
    await net.replay();
    const forgetful = await clientNode(net, { blobStore: files });
    expect(forgetful.jobs.status(id)).toBeNull();
    forgetful.jobs.stop();

    // Two values that are not jobs: each is named, skipped and deleted; the job is read back.
    const other = 'ab'.repeat(32);
    const kept = JSON.parse(memory.values.get(id)!) as { job: { id: string; shards: { miner: string | null }[] } };
    kept.job.id = other;
    kept.job.shards[0]!.miner = null;
    memory.values.set(other, JSON.stringify(kept));
    memory.values.set('torn', '{"v": 1, "job": {"id"');
    const again = await clientNode(net, { memory, blobStore: files });
    expect([...again.jobs.state.get().skipped!].sort()).toEqual([
      `the job kept under "${other}" is unreadable (job.shards.0: paid without a miner and a results hash); deleted`,
      expect.stringMatching(/^the job kept under "torn" is unreadable \(not JSON .*\); deleted$/),
    ]);
    expect([...memory.values.keys()]).toEqual([id]);
    expect(again.jobs.status(id)).toEqual(seen);
    expect(again.jobs.state.get().jobs.map((j) => j.id)).toEqual([id]);
    const out = await again.jobs.results(id);
    expect(out.map((l) => l.custom_id)).toEqual(REQUESTS.map((r) => r.custom_id));
    for (const [k, line] of out.entries())
      expect(
        await checkResult(resultOf(line), {
          miner: honest.id,
          requestId: jobRequestId(id, k),
          params: REQUESTS[k]!.params,
        }),
      ).toBeNull();
    // Forgetting it deletes what was kept.
    await again.jobs.forget(id);
    expect(memory.values.size).toBe(0);
  });
});

describe('a job.open the ledger lost', () => {
  it('is reported refused once no replay shows it two epochs on, nothing taken (a client stopped before its peers had the record)', async () => {
    const net = await newNet();
    const memory = new MemoryJobMemoryStore();
    const c = await clientNode(net, { memory });
    const before = net.snapshot.get()!.balances[client.id];
    const id = await c.jobs.open(openJob());
    c.jobs.stop();
    // Its epoch became final without it: the node's store drops it (as finality's repair does).
    await net.store.delete([id]);
    const again = await clientNode(net, { memory });
    expect(again.jobs.status(id)).toMatchObject({ phase: 'pending', openedAt: 30 });
    const tempo = config.subnets[0]!.tempo;
    await net.at(30 + 2 * tempo + config.graceBlocks);
    expect(again.jobs.status(id)).toMatchObject({ phase: 'pending' });
    const snap = await net.at(31 + 2 * tempo + config.graceBlocks);
    expect(again.jobs.status(id)).toMatchObject({
      phase: 'refused',
      reason: expect.stringMatching(/^its job\.open \(block 30\) never showed in a replay: .*nothing was taken$/),
    });
    expect(snap.balances[client.id]).toBe(before);
    await expect(again.jobs.results(id)).rejects.toThrow(/is refused: it has no results/);
  });
});

describe('refusals', () => {
  it('refuses bad requests, an oversized file and an unfunded deposit before signing anything', async () => {
    const net = await newNet();
    const c = await clientNode(net);
    const [a, b] = REQUESTS;
    const refusals: [string, Partial<OpenJob>, string, RegExp][] = [
      ['malformed JSON', { lines: `${JSON.stringify(a)}\n{"custom_id": "x",\n` }, 'bad-input', /line 2: not JSON/],
      [
        'an empty line',
        { lines: `${JSON.stringify(a)}\n\n${JSON.stringify(b)}\n` },
        'bad-input',
        /line 2: the line is empty/,
      ],
      [
        'another model',
        { lines: jsonl([a, { ...b, params: { ...b!.params, model: 'karpathy/stories260K' } }]) },
        'bad-input',
        /line 2: asks for model karpathy\/stories260K; the job's model is webtensor\/tiny-llama/,
      ],
      [
        'a misspelt field',
        { lines: [{ custom_id: 'x', params: { model: MODEL, prompt: 'Hi', max_tokens: 8 } }] },
        'bad-input',
        /line 1: params/,
      ],
      [
        'too many tokens',
        { lines: [a, { ...b, params: { ...b!.params, maxNewTokens: 500 } }] },
        'bad-input',
        /line 2: params\.maxNewTokens/,
      ],
      ['a repeated custom_id', { lines: [a, b, a] }, 'bad-input', /line 3: custom_id "tale-1" repeats line 1/],
      ['no requests', { lines: [] }, 'bad-input', /no requests/],
      ['more shards than requests', { shards: 7 }, 'bad-input', /1 to 6 shards; got 7/],
      ['a deadline too far', { deadlineEpochs: 65 }, 'bad-input', /1 to 64 epochs/],
      ['no price', { price: '0' }, 'bad-input', /above 0/],
      ['another subnet', { netuid: 9 }, 'bad-input', /no subnet 9/],
      [
        'a deposit above the balance',
        { price: FUNDS },
        'insufficient-funds',
        /deposit is 6000000000 rao .* can spend 1000000000 rao/,
      ],
    ];
    for (const [what, over, code, message] of refusals) {
      const err = await c.jobs.open(openJob(over)).catch((e: unknown) => e);
      expect(err, what).toBeInstanceOf(NodeError);
      expect(err, what).toMatchObject({ code, message: expect.stringMatching(message) });
    }
    // A file larger than a blob may be.
    const small = await clientNode(net, { blobs: { maxBlobBytes: 512 } });
    await expect(small.jobs.open(openJob())).rejects.toThrow(/The job file is \d+ bytes; a blob holds at most 512/);
    // And shards whose results could not fit in a blob.
    const many = Array.from({ length: 700 }, (_, k) => ({
      custom_id: `r${k}`,
      params: { ...a!.params, maxNewTokens: 128 },
    }));
    await expect(c.jobs.open(openJob({ lines: many, shards: 1 }))).rejects.toThrow(/use at least 2 shards/);

    // Nothing was signed, stored or taken.
    expect(await recordsOf(net, 'job.open')).toHaveLength(0);
    expect(await c.blobs.usage()).toMatchObject({ stored: 0, partial: 0 });
    const snap = await net.replay();
    expect(snap.balances[client.id]).toBe(FUNDS);
    expect(c.jobs.state.get().jobs).toEqual([]);
  });

  it('a miner claims nothing it cannot back: not without the bond, not a job whose file is not what the job names', async () => {
    const net = await newNet();
    const c = await clientNode(net);
    // A job naming 4 requests whose file holds 3 (signed by hand: the JobClient would refuse it).
    const lying = await c.blobs.add(jobFileBytes(REQUESTS.slice(0, 3)));
    await c.blobs.serve(lying);
    await c.book.publish('job.open', {
      netuid: 1,
      model: MODEL,
      requests: 4,
      shards: 1,
      inputHash: lying,
      price: '1000',
      maxTokens: 16,
      deadline: net.block + 40,
    });
    await net.at(31);
    const broke = await minerNode(net, poor);
    await broke.jobs.step();
    expect(broke.jobs.state.get()).toMatchObject({ current: null, refusedJobs: 0 });
    expect(broke.jobs.state.get().lastError).toMatch(/needs a bond of 8000 rao; this key can spend 0/);

    const good = await minerNode(net, honest);
    await good.jobs.step();
    expect(good.jobs.state.get()).toMatchObject({ current: null, refusedJobs: 1 });
    expect(good.jobs.state.get().lastError).toMatch(/the file holds 3 requests; the job names 4/);
    // A good job opened later is claimed; the bad one is not looked at again.
    const id = await c.jobs.open(openJob());
    await net.at(32);
    await good.jobs.step();
    expect(good.jobs.state.get()).toMatchObject({ current: { job: id, shard: 0 }, refusedJobs: 1 });
    expect((await recordsOf(net, 'job.claim')).map((r) => (r.record.body as { job: string }).job)).toEqual([id]);
  });
});
