/**
 * A validator's side of batch jobs (docs/jobs.md, "Audits"). Every JOB_STEP_MS while started, it takes one shard
 * waiting for an audit on its subnet (not of its own job, not its own shard; only while it holds a permit),
 * fetches the job file from the job's client and the results file from the shard's miner, and judges it:
 *
 *  - every line: one per request in order, its custom_id, signed by the shard's miner for `<job>:<line>` over
 *    exactly that request's params, the subnet's model, its tokens following from its candidates (stage 1);
 *  - a sample of AUDIT_SAMPLE_LINES lines chosen at random: this node's own pass of the pinned model over the same
 *    tokens agrees (stage 2, shared/validator/judge.ts, as for challenges).
 *
 * Then it publishes `job.audit` with the hash it judged. A miner that sends bytes that do not hash to its published
 * hash (or more than any honest results) fails; a miner it cannot fetch from is tried FETCH_ATTEMPTS times and then
 * left to the settle rule (refund to the client, bond back to the miner): from here an unreachable miner and a
 * network problem of this node's own look the same, and only a proven fault should destroy a bond. The job file
 * comes from the job's client or, when the client cannot be reached (it restarts, say), from the shard's miner,
 * which serves it while its shard waits for an audit.
 */
import { repeatingTask } from '@libp2p/utils';
import { DEFAULT_AUDIT_THRESHOLDS, type AuditThresholds } from '../../shared/inference/audit-stats.ts';
import type { Reference } from '../../shared/inference/engine.ts';
import { checkResultsFile, JobFileError, resultLineBound } from '../../shared/inference/job-files.ts';
import type { SubnetConfig } from '../../shared/ledger/config.ts';
import { settleBlock, shardRange, type JobState } from '../../shared/ledger/jobs.ts';
import { uidOf, type LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import { cryptoRandom, type Random } from '../../shared/validator/challenges.ts';
import { judgeStageTwo } from '../../shared/validator/judge.ts';
import { Store } from '../store.ts';
import { JOB_STEP_MS, JobInputs, oneAtATime, type JobBlobs, type JobLedger } from './jobs.ts';

/**
 * Lines of a shard checked in depth (stage 2). One would do in expectation: a miner faking f of n lines saves at most
 * f/n of the shard's cost C ≤ P (its payment) and is caught with probability at least f/n, losing P and its bond 2P,
 * so faking never pays (f·C/n < 3P·f/n). More lines make getting away with it rarer.
 */
export const AUDIT_SAMPLE_LINES = 4;
/** Fetches of a shard's files tried (RETRY_BLOCKS apart) before it is left to the settle rule. */
export const FETCH_ATTEMPTS = 3;
export const RETRY_BLOCKS = 2;

export interface JobAuditorComponents extends JobLedger {
  blobs: JobBlobs;
  /** The subnet this node validates: its jobs are the ones audited. */
  subnet: SubnetConfig;
  /** This node's teacher-forced pass over `tokenIds` after `prompt` on the pinned model (engine.score). */
  scoreLocally(prompt: string, tokenIds: number[]): Promise<Reference>;
  /** Where the sample comes from (default: crypto). */
  random?: Random;
  thresholds?: AuditThresholds;
}

export interface JobAuditorState {
  running: boolean;
  netuid: number;
  passed: number;
  failed: number;
  /** Shards left to the settle rule: their miner (or the job's client) could not be fetched from. */
  leftToSettle: number;
  /** The last audit: the shard, its verdict and why. */
  last: { job: string; shard: number; pass: boolean; reason: string } | null;
  lastError: string | null;
}

type Outcome = { kind: 'verdict'; pass: boolean; reason: string } | { kind: 'retry' | 'skip'; reason: string };

const verdict = (pass: boolean, reason: string): Outcome => ({ kind: 'verdict', pass, reason });

/** `count` distinct indices of [0, n), drawn with `random`. */
function sample(n: number, count: number, random: Random): number[] {
  const all = Array.from({ length: n }, (_, k) => k);
  for (let k = 0; k < Math.min(count, n); k++) {
    const j = k + Math.floor(random() * (n - k));
    [all[k], all[j]] = [all[j]!, all[k]!];
  }
  return all.slice(0, Math.min(count, n));
}

export class JobAuditor {
  readonly state = new Store<JobAuditorState>({
    running: false,
    netuid: 0,
    passed: 0,
    failed: 0,
    leftToSettle: 0,
    last: null,
    lastError: null,
  });
  /** One pass: audit at most one shard. Tests call it directly. */
  readonly step = oneAtATime(() => this.pass());
  /** Shards judged or skipped (`job/shard/resultsHash`), and fetch attempts of those not yet judged. */
  private readonly done = new Set<string>();
  private readonly attempts = new Map<string, { count: number; next: number }>();
  private readonly inputs: JobInputs;
  private readonly task;
  private stopping = new AbortController();

  constructor(
    private readonly components: JobAuditorComponents,
    init: { stepMs?: number } = {},
  ) {
    this.inputs = new JobInputs(components.blobs);
    this.task = repeatingTask(() => this.step(), init.stepMs ?? JOB_STEP_MS);
    this.state.update({ netuid: components.subnet.netuid });
  }

  private get self(): string {
    return this.components.book.self;
  }

  start(): void {
    this.state.update({ running: true });
    this.task.start();
  }

  stop(): void {
    this.task.stop();
    this.stopping.abort();
    this.stopping = new AbortController();
    this.state.update({ running: false });
  }

  /** Judge the first shard waiting for an audit that this node may and still should audit. */
  private async pass(): Promise<void> {
    const snap = this.components.snapshot.get();
    const { subnet } = this.components;
    if (!snap) return;
    try {
      await this.forgetClosed(snap);
      if (!this.permitted(snap, subnet.netuid)) return;
      const next = this.nextShard(snap, subnet.netuid);
      if (!next) return;
      const { id, job, shard, key } = next;
      const outcome = await this.audit(id, job, shard);
      if (outcome.kind === 'verdict') await this.publish(id, shard, job.shardStates[shard]!.resultsHash!, outcome, key);
      else if (outcome.kind === 'skip') {
        this.done.add(key);
        this.state.update({ lastError: `shard ${shard} of job ${id}: ${outcome.reason}` });
      } else {
        const count = (this.attempts.get(key)?.count ?? 0) + 1;
        this.attempts.set(key, { count, next: this.components.currentBlock() + RETRY_BLOCKS });
        const left = count >= FETCH_ATTEMPTS;
        this.state.update({
          leftToSettle: this.state.get().leftToSettle + (left ? 1 : 0),
          lastError: `shard ${shard} of job ${id}: ${outcome.reason}${left ? '; left to the settle rule' : ''}`,
        });
      }
    } catch (err) {
      this.state.update({ lastError: (err as Error).message });
    }
  }

  /** What it noted of jobs that closed: their keys, and the job files it fetched for them. */
  private async forgetClosed(snap: LedgerSnapshot): Promise<void> {
    const open = snap.jobs ?? {};
    const closed = (key: string) => !open[key.slice(0, key.indexOf('/'))];
    for (const key of this.done) if (closed(key)) this.done.delete(key);
    for (const key of this.attempts.keys()) if (closed(key)) this.attempts.delete(key);
    await this.inputs.sweep(open);
  }

  private permitted(snap: LedgerSnapshot, netuid: number): boolean {
    const uid = uidOf(snap, netuid, this.self);
    return uid !== null && (snap.subnets.find((s) => s.netuid === netuid)?.permits[uid] ?? false);
  }

  private nextShard(snap: LedgerSnapshot, netuid: number) {
    const { network } = this.components;
    const block = this.components.currentBlock();
    const jobs = Object.entries(snap.jobs ?? {})
      .filter(([, j]) => j.netuid === netuid && j.client !== this.self && block < settleBlock(network, j))
      .sort(([a], [b]) => (a < b ? -1 : 1));
    for (const [id, job] of jobs)
      for (const [shard, s] of job.shardStates.entries()) {
        if (s.status !== 'result' || s.miner === this.self) continue;
        const key = `${id}/${shard}/${s.resultsHash}`;
        const tried = this.attempts.get(key);
        if (this.done.has(key) || (tried && (tried.count >= FETCH_ATTEMPTS || block < tried.next))) continue;
        return { id, job, shard, key };
      }
    return null;
  }

  /** Fetch the shard's files and judge them: a verdict, a fetch to retry, or a job that cannot be audited. */
  private async audit(id: string, job: JobState, k: number): Promise<Outcome> {
    const { blobs, scoreLocally } = this.components;
    const signal = this.stopping.signal;
    const { miner, resultsHash } = job.shardStates[k] as { miner: string; resultsHash: string };
    let lines;
    try {
      lines = await this.inputs.lines(id, job, { signal });
    } catch (err) {
      // A job file that is not what the job names is the client's fault, not the miner's.
      if (err instanceof JobFileError) return { kind: 'skip', reason: `the job file from its client: ${err.message}` };
      // The client cannot be reached (stopped a while, say): the shard's miner serves the file while its shard waits
      // for an audit, and the file is named by its hash, so it is the same file from anyone.
      try {
        lines = await this.inputs.lines(id, job, { signal, from: miner });
      } catch (again) {
        if (again instanceof JobFileError)
          return { kind: 'skip', reason: `the job file from the miner: ${again.message}` };
        const reason =
          `the job file from its client (${(err as Error).message}) ` +
          `or from the miner (${(again as Error).message})`;
        return { kind: 'retry', reason };
      }
    }
    const [first, end] = shardRange(job.requests, job.shards, k);
    const bound = (end - first) * resultLineBound(job.maxTokens);
    try {
      await blobs.fetch(miner, resultsHash, { maxBytes: Math.min(bound, blobs.maxBlobBytes), signal });
    } catch (err) {
      const message = (err as Error).message;
      if (err instanceof RpcError && err.code === 'bad-frame')
        return verdict(false, `the miner's results do not check out: ${message}`);
      if (err instanceof RpcError && err.code === 'too-large' && bound <= blobs.maxBlobBytes)
        return verdict(false, `the results are larger than any honest shard's (${bound} bytes): ${message}`);
      return { kind: 'retry', reason: `the results from ${miner}: ${message}` };
    }
    try {
      const results = await checkResultsFile(await blobs.read(resultsHash), {
        jobId: id,
        model: job.model,
        shards: job.shards,
        shard: k,
        miner,
        lines,
      });
      for (const i of sample(results.length, AUDIT_SAMPLE_LINES, this.components.random ?? cryptoRandom)) {
        const { result } = results[i]!;
        let reference: Reference | null;
        try {
          reference = await scoreLocally(lines[first + i]!.params.prompt, result.tokenIds);
        } catch (err) {
          // Token ids the pinned model does not have are a wrong answer; anything else is this node's problem.
          if ((err as { code?: string }).code !== 'bad-params') throw err;
          reference = null;
        }
        const judged = judgeStageTwo(result, reference, this.components.thresholds ?? DEFAULT_AUDIT_THRESHOLDS);
        if (!judged.ok) return verdict(false, `line ${i + 1} (request ${first + i}): ${judged.reason}`);
      }
      return verdict(true, `${results.length} lines signed and consistent; the sampled lines match this node's model`);
    } catch (err) {
      if (err instanceof JobFileError) return verdict(false, err.message);
      throw err;
    } finally {
      await blobs.delete(resultsHash);
    }
  }

  /** Sign the verdict, if the shard still waits for it (another validator's audit may have decided it meanwhile). */
  private async publish(
    id: string,
    k: number,
    resultsHash: string,
    outcome: Outcome & { kind: 'verdict' },
    key: string,
  ) {
    this.done.add(key);
    const job = this.components.snapshot.get()?.jobs?.[id];
    const shard = job?.shardStates[k];
    if (!job || shard?.status !== 'result' || shard.resultsHash !== resultsHash) return;
    if (this.components.currentBlock() >= settleBlock(this.components.network, job)) return;
    await this.components.book.publish('job.audit', { job: id, shard: k, resultsHash, pass: outcome.pass });
    const s = this.state.get();
    this.state.update({
      passed: s.passed + (outcome.pass ? 1 : 0),
      failed: s.failed + (outcome.pass ? 0 : 1),
      last: { job: id, shard: k, pass: outcome.pass, reason: outcome.reason },
    });
  }
}
