/**
 * The client's side of a batch job (docs/jobs.md): open a job (every request, the sizes and the deposit checked
 * before anything is signed; the job file stored and served; `job.open` published), follow it, cancel it, and
 * collect its results: each paid shard's results file fetched from its miner, checked against the hash its audit
 * paid and line by line against the requests, and assembled in request order.
 *
 * It follows its own jobs through every replay and keeps what it saw, because a closed job leaves the ledger's
 * state and the replay reports it only for a while (the snapshot's `settledJobs`). Given the platform's
 * JobMemoryStore, it keeps its jobs there as well (job-memory.ts: each job when it is signed, opens, closes or is
 * refused; the last MAX_KEPT_JOBS closed ones), so `status` and `results` of a closed job still work after a restart.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { NodeError } from '../../shared/errors.ts';
import {
  checkJobLines,
  checkResultsFile,
  jobFileBytes,
  JobFileError,
  parseJobFile,
  resultLineBound,
  type JobLine,
} from '../../shared/inference/job-files.ts';
import type { GenerateResult } from '../../shared/inference/protocol.ts';
import { epochBlocks, findSubnet } from '../../shared/ledger/config.ts';
import { MAX_JOB_EPOCHS, shardRange, type JobState, type ShardState } from '../../shared/ledger/jobs.ts';
import { MAX_JOB_SHARDS, recordId } from '../../shared/ledger/records.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import type { JobMemoryStore } from '../platform.ts';
import { Store } from '../store.ts';
import { jobMemoryText, MAX_KEPT_JOBS, readJobMemory } from './job-memory.ts';
import { JobInputs, type JobBlobs, type JobLedger } from './jobs.ts';

export interface OpenJob {
  netuid: number;
  /** The requests: a job file's JSONL text, or its lines as values (`{custom_id, params}` each). */
  lines: string | readonly unknown[];
  /** Rao per request (a bigint, or its decimal string). */
  price: bigint | string;
  /** The deadline, in epochs from now (1 to 64): claims and results before it, audits one epoch after. */
  deadlineEpochs: number;
  shards: number;
}

export interface JobShardView {
  shard: number;
  /** Its requests: lines [first, end) of the job file, from 0. */
  first: number;
  end: number;
  status: ShardState['status'];
  miner: string | null;
  resultsHash: string | null;
  /** A claim's last block (exclusive) for its result. */
  until: number | null;
}

export interface JobStatus {
  id: string;
  /** pending: signed, not replayed yet; refused: the replay refused the `job.open` (see `reason`). */
  phase: 'pending' | 'open' | 'closed' | 'refused';
  reason: string | null;
  client: string;
  netuid: number;
  model: string;
  requests: number;
  inputHash: string;
  price: bigint;
  maxTokens: number;
  /** The block of its `job.open`, and its deadline. */
  openedAt: number;
  deadline: number;
  cancelled: boolean;
  deposit: bigint;
  paid: bigint;
  refunded: bigint;
  forfeited: bigint;
  shards: JobShardView[];
  /** The block at which it closed, once closed. */
  closedAt: number | null;
}

/** One line of a job's output, in request order: the miner's signed result, or why there is none. */
export type JobOutputLine =
  | { custom_id: string; result: GenerateResult }
  | { custom_id: string; error: { code: 'refunded' | 'pending' | 'unavailable'; message: string } };

export interface JobClientState {
  /** This key's jobs that this node has seen, newest first. */
  jobs: readonly JobStatus[];
  /** Values of the memory that did not read back as this key's jobs at the start, each naming its key and why. */
  skipped?: readonly string[];
  /** The last failure to read or write the memory, or null. */
  lastError?: string | null;
}

export interface JobClientComponents extends JobLedger {
  blobs: JobBlobs;
  /** Where its jobs are kept across restarts; without one, a restart forgets the jobs the replay no longer reports. */
  memory?: JobMemoryStore;
}

const refuse = (message: string): never => {
  throw new NodeError('bad-input', message);
};

function statusOf(id: string, job: JobState, phase: JobStatus['phase'], closedAt: number | null): JobStatus {
  return {
    id,
    phase,
    reason: null,
    client: job.client,
    netuid: job.netuid,
    model: job.model,
    requests: job.requests,
    inputHash: job.inputHash,
    price: job.price,
    maxTokens: job.maxTokens,
    openedAt: job.openedAt,
    deadline: job.deadline,
    cancelled: job.cancelled,
    deposit: job.deposit,
    paid: job.paid,
    refunded: job.refunded,
    forfeited: job.forfeited,
    shards: job.shardStates.map((s, shard) => {
      const [first, end] = shardRange(job.requests, job.shards, shard);
      return {
        shard,
        first,
        end,
        status: s.status,
        miner: s.miner ?? null,
        resultsHash: s.resultsHash ?? null,
        until: s.until ?? null,
      };
    }),
    closedAt,
  };
}

/** The price as rao, or a sentence. */
function priceOf(price: bigint | string): bigint {
  const rao = typeof price === 'bigint' ? price : /^\d{1,30}$/.test(price) ? BigInt(price) : null;
  if (rao === null || rao <= 0n) refuse(`The price is rao per request, a whole number above 0; got ${String(price)}.`);
  return rao!;
}

export class JobClient {
  readonly state = new Store<JobClientState>({ jobs: [], skipped: [], lastError: null });
  /** This key's jobs, as last seen. */
  private readonly own = new Map<string, JobStatus>();
  /** The phase in which each job was last written to the memory (what the memory holds). */
  private readonly kept = new Map<string, JobStatus['phase']>();
  private restoring: Promise<void> | null = null;
  /** Writes to the memory, one after the other. */
  private writes: Promise<void> = Promise.resolve();
  private readonly inputs: JobInputs;
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly components: JobClientComponents) {
    this.inputs = new JobInputs(components.blobs);
  }

  get self(): string {
    return this.components.book.self;
  }

  start(): void {
    this.restoring ??= this.restore();
    this.unsubscribe ??= this.components.snapshot.subscribe((s) => void this.follow(s).catch(() => {}));
    void this.follow(this.components.snapshot.get()).catch(() => {});
  }

  /** Resolves once the jobs kept across restarts are read back (`status` knows them from then on). */
  ready(): Promise<void> {
    return this.restoring ?? Promise.resolve();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /**
   * Open a job of `lines` on subnet `netuid`; resolves with its id (the `job.open` record's id) once it is signed
   * and stored. Throws NodeError, having signed nothing, for a bad request (naming the line), a job too large for
   * a blob, or a deposit (price × requests) beyond what this key may spend.
   */
  async open(request: OpenJob): Promise<string> {
    const { book, network, admission, blobs } = this.components;
    const subnet = findSubnet(network, request.netuid);
    if (!subnet) return refuse(`This network has no subnet ${request.netuid}.`);
    let lines: JobLine[];
    try {
      lines =
        typeof request.lines === 'string'
          ? parseJobFile(request.lines, { model: subnet.model })
          : checkJobLines(request.lines, { model: subnet.model });
    } catch (err) {
      if (err instanceof JobFileError) refuse(`The job's requests are not valid: ${err.message}.`);
      throw err;
    }
    const requests = lines.length;
    const { shards, deadlineEpochs } = request;
    if (!Number.isInteger(shards) || shards < 1 || shards > Math.min(MAX_JOB_SHARDS, requests))
      refuse(`A job of ${requests} requests has 1 to ${Math.min(MAX_JOB_SHARDS, requests)} shards; got ${shards}.`);
    if (!Number.isInteger(deadlineEpochs) || deadlineEpochs < 1 || deadlineEpochs > MAX_JOB_EPOCHS)
      refuse(`The deadline is 1 to ${MAX_JOB_EPOCHS} epochs away; got ${deadlineEpochs}.`);
    const price = priceOf(request.price);
    const bytes = jobFileBytes(lines);
    if (bytes.length > blobs.maxBlobBytes)
      refuse(
        `The job file is ${bytes.length} bytes; a blob holds at most ${blobs.maxBlobBytes}. ` +
          'Split the requests into several jobs.',
      );
    const maxTokens = lines.reduce((most, l) => Math.max(most, l.params.maxNewTokens), 1);
    // Every shard's results must fit in a blob, or no miner could deliver them.
    const largest = Math.ceil(requests / shards);
    const perLine = resultLineBound(maxTokens);
    if (perLine > blobs.maxBlobBytes)
      refuse(
        `One request of up to ${maxTokens} tokens may return ${perLine} bytes of results, more than the ` +
          `${blobs.maxBlobBytes} a blob holds here.`,
      );
    if (largest * perLine > blobs.maxBlobBytes)
      refuse(
        `A shard of ${largest} requests of up to ${maxTokens} tokens may return ${largest * perLine} bytes of ` +
          `results, more than the ${blobs.maxBlobBytes} a blob holds; use at least ` +
          `${Math.ceil(requests / Math.floor(blobs.maxBlobBytes / perLine))} shards.`,
      );
    const deposit = price * BigInt(requests);
    const spendable = admission.spendable(this.self);
    if (deposit > spendable)
      throw new NodeError(
        'insufficient-funds',
        `The deposit is ${deposit} rao (${requests} requests × ${price} rao); this key can spend ${spendable} rao.`,
      );

    const hash = bytesToHex(sha256(bytes));
    const held = await blobs.has(hash);
    const served = blobs.isServed(hash);
    await blobs.add(bytes);
    await blobs.serve(hash);
    const block = this.components.currentBlock();
    const body = {
      netuid: subnet.netuid,
      model: subnet.model,
      requests,
      shards,
      inputHash: hash,
      price: price.toString(),
      maxTokens,
      deadline: block + deadlineEpochs * epochBlocks(network),
    };
    let id: string;
    try {
      id = recordId(await book.publish('job.open', body, block));
    } catch (err) {
      // Refused before it was signed into the chain (admission): leave the store as it was.
      if (!served) blobs.unserve(hash);
      if (!held) await blobs.delete(hash);
      throw err;
    }
    const job: JobState = {
      ...body,
      client: this.self,
      price,
      openedAt: block,
      deposit,
      paid: 0n,
      refunded: 0n,
      forfeited: 0n,
      cancelled: false,
      shardStates: Array.from({ length: shards }, () => ({ status: 'open' as const })),
    };
    this.own.set(id, statusOf(id, job, 'pending', null));
    this.publish();
    await this.keep();
    return id;
  }

  /**
   * Where job `jobId` stands, from the latest replay, or what this node saw of it (kept across restarts: known once
   * `ready()` resolves); null for a job unknown here.
   */
  status(jobId: string): JobStatus | null {
    const snap = this.components.snapshot.get();
    const open = snap?.jobs?.[jobId];
    if (open) return statusOf(jobId, open, 'open', null);
    const settled = snap?.settledJobs?.find((s) => s.job === jobId);
    if (settled) return statusOf(jobId, settled, 'closed', settled.block);
    const own = this.own.get(jobId);
    const refused = snap?.refused[jobId];
    if (own && refused) return { ...own, phase: 'refused', reason: refused.message };
    return own ?? null;
  }

  /**
   * The job's output, one line per request in order: for a paid shard the miner's signed results (fetched from it,
   * checked against the hash its audit paid and against every request); for the others an error line saying why
   * (refunded, still pending, or the paid results could not be fetched or did not check out: asking again later
   * retries the fetch).
   */
  async results(jobId: string): Promise<JobOutputLine[]> {
    await this.ready();
    const job = this.status(jobId);
    if (!job || job.phase === 'pending' || job.phase === 'refused')
      refuse(`Job ${jobId} ${job ? `is ${job.phase}` : 'is not known here'}: it has no results.`);
    const { blobs } = this.components;
    const lines = await this.inputs.lines(jobId, job!);
    const out: JobOutputLine[] = [];
    const errors = (first: number, end: number, code: 'refunded' | 'pending' | 'unavailable', message: string) => {
      for (let k = first; k < end; k++) out.push({ custom_id: lines[k]!.custom_id, error: { code, message } });
    };
    for (const s of job!.shards) {
      if (s.status === 'refunded') {
        errors(s.first, s.end, 'refunded', `shard ${s.shard} was refunded: no results passed an audit in time`);
        continue;
      }
      if (s.status !== 'paid') {
        errors(s.first, s.end, 'pending', `shard ${s.shard} is ${s.status}`);
        continue;
      }
      const miner = s.miner!;
      const hash = s.resultsHash!;
      try {
        const maxBytes = Math.min(blobs.maxBlobBytes, (s.end - s.first) * resultLineBound(job!.maxTokens));
        await blobs.fetch(miner, hash, { maxBytes });
        const checked = await checkResultsFile(await blobs.read(hash), {
          jobId,
          model: job!.model,
          shards: job!.shards.length,
          shard: s.shard,
          miner,
          lines,
        });
        out.push(...checked);
      } catch (err) {
        errors(s.first, s.end, 'unavailable', `shard ${s.shard}'s results from ${miner}: ${(err as Error).message}`);
      }
    }
    return out;
  }

  /** Cancel an open job of this key: shards nobody holds are refunded at once, shards in flight may finish. */
  async cancel(jobId: string): Promise<void> {
    const job = this.components.snapshot.get()?.jobs?.[jobId];
    if (!job)
      refuse(
        this.own.get(jobId)?.phase === 'pending'
          ? `Job ${jobId} is not open yet (its record waits for the next replay); cancel it in a moment.`
          : `There is no open job ${jobId}.`,
      );
    if (job!.client !== this.self) refuse(`Job ${jobId} is ${job!.client}'s; only its client may cancel it.`);
    if (job!.cancelled) refuse(`Job ${jobId} is cancelled already.`);
    if (this.components.currentBlock() >= job!.deadline)
      refuse(`Job ${jobId} passed its deadline (block ${job!.deadline}); it settles by itself.`);
    await this.components.book.publish('job.cancel', { job: jobId });
  }

  /** Forget a closed job of this key: delete its job file and the results fetched for it. */
  async forget(jobId: string): Promise<void> {
    const job = this.status(jobId);
    if (job?.phase === 'open' || job?.phase === 'pending') refuse(`Job ${jobId} is ${job.phase}; cancel it first.`);
    if (!job) return;
    this.own.delete(jobId);
    this.publish();
    await this.keep();
    const stillUsed = [...this.own.values()].some((j) => j.inputHash === job.inputHash);
    if (!stillUsed) await this.components.blobs.delete(job.inputHash);
    for (const s of job.shards) if (s.resultsHash) await this.components.blobs.delete(s.resultsHash);
  }

  /**
   * Keep up with a replay: note this key's jobs (after a restart, those the ledger shows), serve the job files
   * validators and miners still need, and stop serving those of jobs that closed or were refused.
   */
  private async follow(snap: LedgerSnapshot | null): Promise<void> {
    await this.ready();
    if (!snap) return;
    for (const [id, job] of Object.entries(snap.jobs ?? {}))
      if (job.client === this.self) this.own.set(id, statusOf(id, job, 'open', null));
    for (const s of snap.settledJobs ?? [])
      if (s.client === this.self) this.own.set(s.job, statusOf(s.job, s, 'closed', s.block));
    // A job.open no replay shows two epochs on is gone from the ledger (its epoch became final without it, as when
    // this node stopped before its peers had the record): the job never opened and nothing was taken.
    const lost = snap.closeThrough - 2 * epochBlocks(this.components.network);
    for (const [id, job] of this.own)
      if (job.phase === 'pending' && snap.refused[id])
        this.own.set(id, { ...job, phase: 'refused', reason: snap.refused[id]!.message });
      else if (job.phase === 'pending' && !snap.jobs?.[id] && job.openedAt < lost)
        this.own.set(id, {
          ...job,
          phase: 'refused',
          reason:
            `its job.open (block ${job.openedAt}) never showed in a replay: the ledger does not hold it (its epoch ` +
            'became final without it, as when this node stops before its peers have the record); nothing was taken',
        });
    this.publish();
    void this.keep();
    const { blobs } = this.components;
    const needed = new Set([...this.own.values()].filter((j) => j.phase === 'open' || j.phase === 'pending'));
    const neededHashes = new Set([...needed].map((j) => j.inputHash));
    for (const hash of neededHashes) if (!blobs.isServed(hash) && (await blobs.has(hash))) await blobs.serve(hash);
    for (const job of this.own.values())
      if (!neededHashes.has(job.inputHash) && blobs.isServed(job.inputHash)) blobs.unserve(job.inputHash);
    await this.inputs.sweep(Object.fromEntries([...needed].map((j) => [j.id, true])));
  }

  private publish(): void {
    const jobs = [...this.own.values()].sort((a, b) => b.openedAt - a.openedAt || (a.id < b.id ? -1 : 1));
    this.state.update({ jobs });
  }

  /**
   * Read back the jobs kept across restarts. A value that is not a job (corrupt, or of another format) is skipped,
   * named in `state.skipped` and deleted; one of another key is skipped and left alone.
   */
  private async restore(): Promise<void> {
    const memory = this.components.memory;
    if (!memory) return;
    let entries: { key: string; value: string }[];
    try {
      entries = await memory.all();
    } catch (err) {
      this.state.update({ lastError: `Could not read the jobs kept across restarts: ${(err as Error).message}` });
      return;
    }
    const skipped: string[] = [];
    const bad: string[] = [];
    for (const { key, value } of entries) {
      let job: JobStatus;
      try {
        job = readJobMemory(key, value);
      } catch (err) {
        skipped.push(`the job kept under ${JSON.stringify(key)} is unreadable (${(err as Error).message}); deleted`);
        bad.push(key);
        continue;
      }
      if (job.client !== this.self) {
        skipped.push(`job ${key} is kept for key ${job.client}, not this node's ${this.self}; left alone`);
        continue;
      }
      this.own.set(key, job);
      this.kept.set(key, job.phase);
    }
    if (bad.length > 0) await memory.delete(bad).catch(() => {});
    this.state.update({ skipped });
    this.publish();
  }

  /**
   * Forget the oldest closed and refused jobs beyond MAX_KEPT_JOBS, and write to the memory each job whose phase
   * changed since it was last kept there (signed, opened, closed, refused); delete those forgotten.
   */
  private keep(): Promise<void> {
    const memory = this.components.memory;
    const run = this.writes.then(async () => {
      await this.ready();
      const settled = [...this.own.values()]
        .filter((j) => j.phase === 'closed' || j.phase === 'refused')
        .sort((a, b) => (b.closedAt ?? b.openedAt) - (a.closedAt ?? a.openedAt) || (a.id < b.id ? -1 : 1));
      if (settled.length > MAX_KEPT_JOBS) {
        for (const j of settled.slice(MAX_KEPT_JOBS)) this.own.delete(j.id);
        this.publish();
      }
      if (!memory) return;
      for (const job of [...this.own.values()])
        if (this.kept.get(job.id) !== job.phase) {
          await memory.put(job.id, jobMemoryText(job));
          this.kept.set(job.id, job.phase);
        }
      const gone = [...this.kept.keys()].filter((id) => !this.own.has(id));
      if (gone.length > 0) {
        await memory.delete(gone);
        for (const id of gone) this.kept.delete(id);
      }
    });
    this.writes = run.catch((err: unknown) =>
      this.state.update({ lastError: `Could not keep the jobs across restarts: ${(err as Error).message}` }),
    );
    return this.writes;
  }
}
