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
 * after a restart serves again those of its shards the ledger shows (open jobs, and the settlements the replay
 * reports), if it still holds them. While it holds a shard (claimed, or waiting for an audit) it serves the job file
 * too, for a validator that cannot reach the job's client.
 *
 * A restart does not lose a claim: with no claim in hand, it looks in the ledger for a shard its key holds without
 * a result and, if the job file can be had and the time left passes the same rate rule as a claim, generates it
 * again and publishes before the claim's `until`.
 */
import { repeatingTask } from '@libp2p/utils';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';
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
  /**
   * Which open shard of a job to claim first: in this miner's own order (`spread`, the default: see
   * `shardsInClaimOrder`), or the lowest (`lowest`: tests that script which miner takes which shard).
   */
  shardOrder?: 'spread' | 'lowest';
}

/**
 * `open` shards of job `jobId` in the order the miner `self` claims them: by a hash of the three. When every miner
 * took the lowest open shard they collided on it (one claim wins; the others are refused `shard-taken` and learn it a
 * replay later): bench:batch saw 2 of 6 claims lost so, and the last shards claimed seconds late. Each miner's own
 * order spreads them; the order is fixed, so a miner retries the same shard while it stays open.
 */
export function shardsInClaimOrder(self: string, jobId: string, open: readonly number[]): number[] {
  const rank = (k: number) => {
    const h = sha256(utf8ToBytes(`${self}/${jobId}/${k}`));
    return ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
  };
  return open
    .map((k) => ({ k, r: rank(k) }))
    .sort((a, b) => a.r - b.r || a.k - b.k)
    .map(({ k }) => k);
}

export interface JobMinerState {
  running: boolean;
  /** The shard in hand: claimed (waiting for the replay to confirm it), or being generated. */
  current: { job: string; shard: number; phase: 'claimed' | 'generating'; done: number; total: number } | null;
  /** Shards whose results it published; shards it gave up after claiming; jobs whose file was not what they name. */
  published: number;
  dropped: number;
  refusedJobs: number;
  /** Claims of its key it found in the ledger without a result and took up again (after a restart). */
  resumed: number;
  lastError: string | null;
}

interface Claim {
  job: string;
  shard: number;
  /** The `job.claim` record's id and its sequence in this key's chain ('' and 0: taken up from the replay's state). */
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
    resumed: 0,
    lastError: null,
  });
  /** One pass: keep results served, then claim, or work on the claim in hand. Tests call it directly. */
  readonly step = oneAtATime(() => this.pass());
  private claim: Claim | null = null;
  /** Jobs whose file is not what the job names: never claimed. */
  private readonly badJobs = new Set<string>();
  /** Shards this miner held and gave up (or failed): not claimed or taken up again. */
  private readonly given = new Set<string>();
  /** Shards whose `job.result` it signed: not taken up again while the replay still shows them claimed. */
  private readonly sent = new Set<string>();
  /** Results files it made: the job they answer, and the block at which it saw the job closed. */
  private readonly made = new Map<string, { job: string; closedAt: number | null }>();
  /** Job files it serves (for validators that cannot reach a job's client) while it holds shards of their jobs. */
  private readonly servedInputs = new Set<string>();
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

  /**
   * Stop looking for shards; a generation in progress is cancelled (a JobMiner started later on the same key takes
   * the claim up again if time allows; otherwise it lapses).
   */
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
      else if (!(await this.resume(snap))) await this.claimNext(snap);
    } catch (err) {
      this.note((err as Error).message);
    }
  }

  /** Claim an open shard it can do (see `shardsInClaimOrder`), of the oldest job on its subnet for its model. */
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
      const open = job.shardStates.flatMap((s, k) => (s.status === 'open' && !this.given.has(`${id}/${k}`) ? [k] : []));
      const k = this.init.shardOrder === 'lowest' ? open[0] : shardsInClaimOrder(this.self, id, open)[0];
      if (k === undefined) continue;
      const bond = shardBond(job, k);
      const spendable = admission.spendable(this.self);
      if (bond > spendable) {
        this.note(`shard ${k} of job ${id} needs a bond of ${bond} rao; this key can spend ${spendable}`);
        continue;
      }
      let lines;
      try {
        lines = await this.inputs.lines(id, job, { signal: this.stopping.signal });
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

  /**
   * A claim of this key the replay shows without a result while no claim is in hand: this node restarted while it
   * held it (or lost track of it). Take it up again if its job file can be had and, at the last rate, the shard's
   * tokens fit twice in the time the claim has left; else leave it to lapse. True while such a claim is worked on or
   * waits (for the model, or for the job file): no other shard is claimed meanwhile.
   */
  private async resume(snap: LedgerSnapshot): Promise<boolean> {
    const { miner } = this.components;
    const block = this.components.currentBlock();
    const jobs = Object.entries(snap.jobs ?? {}).sort(([a, x], [b, y]) => x.openedAt - y.openedAt || (a < b ? -1 : 1));
    for (const [id, job] of jobs)
      for (const [k, s] of job.shardStates.entries()) {
        const key = `${id}/${k}`;
        if (s.status !== 'claimed' || s.miner !== this.self || this.given.has(key) || this.sent.has(key)) continue;
        const until = s.until!;
        if (block >= until) continue; // it lapses at the next replay
        if (!miner.model) return true; // the model is loading: wait for it
        if (job.model !== miner.model) {
          this.given.add(key);
          this.note(`shard ${k} of job ${id} was claimed for ${job.model}; this miner now serves ${miner.model}`);
          continue;
        }
        let lines;
        try {
          lines = await this.inputs.lines(id, job, { signal: this.stopping.signal, adopt: true });
        } catch (err) {
          if (err instanceof JobFileError) {
            this.badJobs.add(id);
            this.given.add(key);
            this.note(`job ${id}'s file from its client: ${err.message}`);
            continue;
          }
          // Asked again at the next pass, while the claim has time.
          this.note(`taking up shard ${k} of job ${id} again: its file from its client: ${(err as Error).message}`);
          return true;
        }
        if (!this.hasTime(id, job, k, lines, block, until)) {
          this.given.add(key);
          continue;
        }
        // The replay's state shows the claim: it is confirmed (no record to wait for).
        this.claim = { job: id, shard: k, id: '', seq: 0, block };
        const [first, end] = shardRange(job.requests, job.shards, k);
        const st = this.state.get();
        this.state.update({
          current: { job: id, shard: k, phase: 'claimed', done: 0, total: end - first },
          resumed: st.resumed + 1,
        });
        await this.work(snap, this.claim);
        return true;
      }
    return false;
  }

  /**
   * Whether the shard's tokens, at this miner's last rate, fit twice in the time until `until` (by default, the
   * end of a claim made now).
   */
  private hasTime(
    id: string,
    job: JobState,
    k: number,
    lines: { params: GenerateParams }[],
    block: number,
    until?: number,
  ): boolean {
    const { network, miner } = this.components;
    const [first, end] = shardRange(job.requests, job.shards, k);
    const tokens = lines.slice(first, end).reduce((n, l) => n + l.params.maxNewTokens, 0);
    const rate = miner.state.get().tokensPerSecond ?? this.init.assumedTokensPerSecond ?? 5;
    const needMs = (TIME_MARGIN * tokens * 1000) / rate;
    const claimEnd = until ?? Math.min(block + CLAIM_EPOCHS * epochBlocks(network), job.deadline);
    const haveMs = (claimEnd - block - 1) * network.blockMs;
    if (needMs <= haveMs) return true;
    this.note(
      `shard ${k} of job ${id}: ${tokens} tokens would take ${Math.round(needMs)} ms; the claim ` +
        `${until === undefined ? 'lasts' : 'has left'} ${haveMs}`,
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
    const stopping = this.stopping.signal;
    try {
      await this.generate(claim, job, shard.until!);
    } catch (err) {
      const reason = `shard ${claim.shard} of job ${claim.job}: ${(err as Error).message}`;
      // Stopped: not given up; a start (of this service, or of the node again) takes the claim up if time allows.
      if (stopping.aborted) this.drop(`${reason} (stopped; taken up again at the next start if time allows)`, false);
      else this.drop(reason, true);
    }
  }

  private async generate(claim: Claim, job: JobState, until: number): Promise<void> {
    const { blobs, book } = this.components;
    const currentBlock = () => this.components.currentBlock();
    const lines = await this.inputs.lines(claim.job, job, { signal: this.stopping.signal });
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
    this.sent.add(`${claim.job}/${claim.shard}`);
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
   * Serve the results files of its shards while their jobs are open and for RESULTS_KEPT_EPOCHS after the job
   * closed; then delete them. After a restart, those the ledger shows (of open jobs, and of the settlements the
   * replay reports) are served again if still held. Job files of closed jobs are deleted too.
   */
  private async keepResults(snap: LedgerSnapshot): Promise<void> {
    const { blobs, network } = this.components;
    const adopt = async (job: string, hash: string | undefined, closedAt: number | null) => {
      if (hash && !this.made.has(hash) && (await blobs.has(hash))) this.made.set(hash, { job, closedAt });
    };
    for (const [id, job] of Object.entries(snap.jobs ?? {}))
      for (const s of job.shardStates) if (s.miner === this.self) await adopt(id, s.resultsHash, null);
    for (const settled of snap.settledJobs ?? [])
      for (const s of settled.shardStates)
        if (s.status === 'paid' && s.miner === this.self) await adopt(settled.job, s.resultsHash, settled.block);
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
      } else if (!blobs.isServed(hash)) await blobs.serve(hash).catch(() => this.made.delete(hash));
    }
    // The job files of its shards in hand or waiting for an audit: a validator that cannot reach the job's client
    // (stopped a while, say) fetches the file here (it is named by its hash: the same file from anyone).
    const inputs = new Set<string>();
    const holds = (s: { miner?: string; status: string }) =>
      s.miner === this.self && (s.status === 'claimed' || s.status === 'result');
    for (const job of Object.values(snap.jobs ?? {}))
      if (job.client !== this.self && job.shardStates.some(holds)) inputs.add(job.inputHash);
    for (const hash of inputs)
      if (!blobs.isServed(hash) && (await blobs.has(hash))) {
        await blobs.serve(hash);
        this.servedInputs.add(hash);
      }
    for (const hash of this.servedInputs)
      if (!inputs.has(hash)) {
        this.servedInputs.delete(hash);
        blobs.unserve(hash);
      }
    // What it noted of jobs that closed (their ids never come back: a job's id is its record's).
    const open = snap.jobs ?? {};
    for (const id of this.badJobs) if (!open[id]) this.badJobs.delete(id);
    for (const keys of [this.given, this.sent])
      for (const key of keys) if (!open[key.slice(0, key.indexOf('/'))]) keys.delete(key);
    await this.inputs.sweep(open);
  }
}
