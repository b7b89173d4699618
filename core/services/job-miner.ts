/**
 * A miner's side of batch jobs (docs/jobs.md). Every JOB_STEP_MS while started, it looks for an open shard of a
 * job on its subnet for the model it serves and, holding one claim at a time:
 *
 *  1. fetches the job file from the job's client and checks it against the job's terms first (a bad file costs
 *     nothing: such a job is never claimed);
 *  2. claims the shard if its free balance covers the bond and, at the rate it last generated, it can finish well
 *     before the claim ends;
 *  3. once the replay shows the claim is its own, generates every request of the shard through the Miner (the same
 *     queue, faults and signing as answers to peers; request id `<job>:<line>`);
 *  4. stores and serves the results file and publishes `job.result` before the claim's `until`.
 *
 * It serves its results until RESULTS_KEPT_EPOCHS after the job closes (the client fetches them once paid), and
 * after a restart serves again those of its shards the ledger shows, if it still holds them.
 */
import { repeatingTask } from '@libp2p/utils';
import { JobFileError, jobRequestId, resultsFileBytes, type ResultLine } from '../../shared/inference/job-files.ts';
import type { GenerateParams, GenerateResult } from '../../shared/inference/protocol.ts';
import { epochBlocks } from '../../shared/ledger/config.ts';
import { CLAIM_EPOCHS, shardBond, shardRange, type JobState } from '../../shared/ledger/jobs.ts';
import { recordId } from '../../shared/ledger/records.ts';
import { uidOf, type LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import { Store } from '../store.ts';
import { JOB_STEP_MS, JobInputs, oneAtATime, RESULTS_KEPT_EPOCHS, type JobBlobs, type JobLedger } from './jobs.ts';
import type { Miner } from './miner.ts';

export interface JobMinerComponents extends JobLedger {
  blobs: JobBlobs;
  miner: Pick<Miner, 'answer' | 'model' | 'state'>;
}

export interface JobMinerInit {
  stepMs?: number;
  /** The generation rate assumed before the miner has served anything (tokens per second). */
  assumedTokensPerSecond?: number;
}

export interface JobMinerState {
  running: boolean;
  /** The shard in hand: claimed (waiting for the replay to confirm it), or being generated. */
  current: { job: string; shard: number; phase: 'claimed' | 'generating'; done: number; total: number } | null;
  /** Shards whose results it published; shards it gave up after claiming; jobs whose file was not what they name. */
  published: number;
  dropped: number;
  refusedJobs: number;
  lastError: string | null;
}

interface Claim {
  job: string;
  shard: number;
  id: string;
  seq: number;
  block: number;
}

/** A claim must leave twice the time the miner expects to need, at its last rate. */
const TIME_MARGIN = 2;
/** How long to wait for the queue when users' requests fill it. */
const BUSY_WAIT_MS = 500;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(new RpcError('cancelled', 'the job miner stopped'));
      },
      { once: true },
    );
  });

export class JobMiner {
  readonly state = new Store<JobMinerState>({
    running: false,
    current: null,
    published: 0,
    dropped: 0,
    refusedJobs: 0,
    lastError: null,
  });
  /** One pass: keep results served, then claim, or work on the claim in hand. Tests call it directly. */
  readonly step = oneAtATime(() => this.pass());
  private claim: Claim | null = null;
  /** Jobs whose file is not what the job names: never claimed. */
  private readonly badJobs = new Set<string>();
  /** Shards this miner held and gave up (or failed): not claimed again. */
  private readonly given = new Set<string>();
  /** Results files it made: the job they answer, and the block at which it saw the job closed. */
  private readonly made = new Map<string, { job: string; closedAt: number | null }>();
  private readonly inputs: JobInputs;
  private readonly task;
  private stopping = new AbortController();

  constructor(
    private readonly components: JobMinerComponents,
    private readonly init: JobMinerInit = {},
  ) {
    this.inputs = new JobInputs(components.blobs);
    this.task = repeatingTask(() => this.step(), init.stepMs ?? JOB_STEP_MS);
  }

  private get self(): string {
    return this.components.book.self;
  }

  start(): void {
    this.state.update({ running: true });
    this.task.start();
  }

  /** Stop looking for shards; a generation in progress is cancelled (its claim will lapse). */
  stop(): void {
    this.task.stop();
    this.stopping.abort();
    this.stopping = new AbortController();
    this.state.update({ running: false });
  }

  private note(message: string): void {
    this.state.update({ lastError: message });
  }

  private async pass(): Promise<void> {
    const snap = this.components.snapshot.get();
    if (!snap) return;
    try {
      await this.keepResults(snap);
      if (this.claim) await this.work(snap, this.claim);
      else await this.claimNext(snap);
    } catch (err) {
      this.note((err as Error).message);
    }
  }

  /** Claim the first open shard it can do, of the oldest job on its subnet for its model. */
  private async claimNext(snap: LedgerSnapshot): Promise<void> {
    const { network, miner, admission, book } = this.components;
    const model = miner.model;
    const subnet = network.subnets.find((s) => s.model === model);
    if (!model || !subnet || uidOf(snap, subnet.netuid, this.self) === null) return;
    const block = this.components.currentBlock();
    const jobs = Object.entries(snap.jobs ?? {})
      .filter(([, j]) => j.netuid === subnet.netuid && j.model === model && j.client !== this.self)
      .filter(([id, j]) => !j.cancelled && block < j.deadline && !this.badJobs.has(id))
      .sort(([a, x], [b, y]) => x.openedAt - y.openedAt || (a < b ? -1 : 1));
    for (const [id, job] of jobs) {
      const k = job.shardStates.findIndex((s, k) => s.status === 'open' && !this.given.has(`${id}/${k}`));
      if (k < 0) continue;
      const bond = shardBond(job, k);
      const spendable = admission.spendable(this.self);
      if (bond > spendable) {
        this.note(`shard ${k} of job ${id} needs a bond of ${bond} rao; this key can spend ${spendable}`);
        continue;
      }
      let lines;
      try {
        lines = await this.inputs.lines(id, job, this.stopping.signal);
      } catch (err) {
        if (err instanceof JobFileError) {
          this.badJobs.add(id);
          this.state.update({ refusedJobs: this.state.get().refusedJobs + 1 });
        }
        this.note(`job ${id}'s file from its client: ${(err as Error).message}`);
        continue;
      }
      if (!this.hasTime(id, job, k, lines, block)) continue;
      let record;
      try {
        record = await book.publish('job.claim', { job: id, shard: k });
      } catch (err) {
        this.note(`claiming shard ${k} of job ${id}: ${(err as Error).message}`);
        continue;
      }
      this.claim = { job: id, shard: k, id: recordId(record), seq: record.seq, block: record.block };
      const [first, end] = shardRange(job.requests, job.shards, k);
      this.state.update({ current: { job: id, shard: k, phase: 'claimed', done: 0, total: end - first } });
      return;
    }
  }

  /** Whether the shard's tokens, at this miner's last rate, fit twice in the claim's time. */
  private hasTime(id: string, job: JobState, k: number, lines: { params: GenerateParams }[], block: number): boolean {
    const { network, miner } = this.components;
    const [first, end] = shardRange(job.requests, job.shards, k);
    const tokens = lines.slice(first, end).reduce((n, l) => n + l.params.maxNewTokens, 0);
    const rate = miner.state.get().tokensPerSecond ?? this.init.assumedTokensPerSecond ?? 5;
    const needMs = (TIME_MARGIN * tokens * 1000) / rate;
    const until = Math.min(block + CLAIM_EPOCHS * epochBlocks(network), job.deadline);
    const haveMs = (until - block - 1) * network.blockMs;
    if (needMs <= haveMs) return true;
    this.note(
      `shard ${k} of job ${id}: ${tokens} tokens would take ${Math.round(needMs)} ms; the claim lasts ${haveMs}`,
    );
    return false;
  }

  /** The claim in hand: wait for the replay to confirm it, then generate and publish. */
  private async work(snap: LedgerSnapshot, claim: Claim): Promise<void> {
    const refused = snap.refused[claim.id];
    if (refused) return this.drop(`the claim of shard ${claim.shard} was refused: ${refused.message}`, false);
    if ((snap.chains[this.self]?.seq ?? 0) < claim.seq) {
      // Not replayed yet; a claim that never shows (dropped by an adoption, say) is given up after two epochs.
      if (this.components.currentBlock() > claim.block + 2 * epochBlocks(this.components.network))
        this.drop('the claim never showed in a replay', false);
      return;
    }
    const job = snap.jobs?.[claim.job];
    const shard = job?.shardStates[claim.shard];
    if (!job || shard?.status !== 'claimed' || shard.miner !== this.self)
      return this.drop(
        `shard ${claim.shard} of job ${claim.job} is ${shard?.status ?? 'gone'}, not claimed by this key`,
        false,
      );
    try {
      await this.generate(claim, job, shard.until!);
    } catch (err) {
      this.drop(`shard ${claim.shard} of job ${claim.job}: ${(err as Error).message}`, true);
    }
  }

  private async generate(claim: Claim, job: JobState, until: number): Promise<void> {
    const { blobs, book } = this.components;
    const currentBlock = () => this.components.currentBlock();
    const lines = await this.inputs.lines(claim.job, job, this.stopping.signal);
    const [first, end] = shardRange(job.requests, job.shards, claim.shard);
    const out: ResultLine[] = [];
    const progress = (done: number) =>
      this.state.update({
        current: { job: claim.job, shard: claim.shard, phase: 'generating', done, total: end - first },
      });
    progress(0);
    for (let k = first; k < end; k++) {
      if (currentBlock() >= until) throw new Error(`the claim ended (block ${until}) before the results were done`);
      const { custom_id, params } = lines[k]!;
      out.push({ custom_id, result: await this.answer(params, jobRequestId(claim.job, k), until) });
      progress(k + 1 - first);
    }
    if (currentBlock() >= until) throw new Error(`the claim ended (block ${until}) before the results were published`);
    const hash = await blobs.add(resultsFileBytes(out));
    await blobs.serve(hash);
    this.made.set(hash, { job: claim.job, closedAt: null });
    await book.publish('job.result', { job: claim.job, shard: claim.shard, resultsHash: hash });
    this.claim = null;
    this.state.update({ current: null, published: this.state.get().published + 1 });
  }

  /** One request through the Miner's queue, waiting while users' requests fill it. */
  private async answer(params: GenerateParams, requestId: string, until: number): Promise<GenerateResult> {
    const signal = this.stopping.signal;
    for (;;) {
      try {
        return await this.components.miner.answer(params, requestId, signal);
      } catch (err) {
        if (!(err instanceof RpcError && err.code === 'busy') || this.components.currentBlock() >= until) throw err;
        await sleep(BUSY_WAIT_MS, signal);
      }
    }
  }

  /** Give up the claim in hand (`held`: it was this miner's, so the shard is not claimed again). */
  private drop(reason: string, held: boolean): void {
    const claim = this.claim;
    if (claim && held) this.given.add(`${claim.job}/${claim.shard}`);
    this.claim = null;
    const s = this.state.get();
    this.state.update({ current: null, dropped: s.dropped + (held ? 1 : 0), lastError: reason });
  }

  /**
   * Serve the results files of its shards while their jobs are open (again after a restart, if still held), and
   * for RESULTS_KEPT_EPOCHS after the job closed; then delete them. Job files of closed jobs are deleted too.
   */
  private async keepResults(snap: LedgerSnapshot): Promise<void> {
    const { blobs, network } = this.components;
    for (const [id, job] of Object.entries(snap.jobs ?? {}))
      for (const s of job.shardStates)
        if (s.miner === this.self && s.resultsHash && !this.made.has(s.resultsHash) && (await blobs.has(s.resultsHash)))
          this.made.set(s.resultsHash, { job: id, closedAt: null });
    const block = this.components.currentBlock();
    for (const [hash, made] of this.made) {
      if (snap.jobs?.[made.job]) {
        // A blob deleted from under it (storage cleared) is forgotten: the shard settles without it.
        if (!blobs.isServed(hash)) await blobs.serve(hash).catch(() => this.made.delete(hash));
        continue;
      }
      made.closedAt ??= block;
      if (block >= made.closedAt + RESULTS_KEPT_EPOCHS * epochBlocks(network)) {
        this.made.delete(hash);
        await blobs.delete(hash);
      }
    }
    // What it noted of jobs that closed (their ids never come back: a job's id is its record's).
    const open = snap.jobs ?? {};
    for (const id of this.badJobs) if (!open[id]) this.badJobs.delete(id);
    for (const key of this.given) if (!open[key.slice(0, key.indexOf('/'))]) this.given.delete(key);
    await this.inputs.sweep(open);
  }
}
