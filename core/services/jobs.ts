/**
 * Batch jobs as services (docs/jobs.md): a client opens a job and collects its results (`JobClient`,
 * job-client.ts), miners claim shards and publish signed results (`JobMiner`, job-miner.ts), validators audit them
 * (`JobAuditor`, job-auditor.ts). The ledger records hold only hashes; the files move as blobs (blobs.ts) in the
 * formats of shared/inference/job-files.ts. This module holds what the three share: the ledger they read and sign
 * into, and the job files they fetch from a job's client and check.
 */
import type { Admission } from '../../shared/ledger/admission.ts';
import type { NetworkConfig } from '../../shared/ledger/config.ts';
import type { JobState } from '../../shared/ledger/jobs.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { MAX_JOB_LINE_BYTES, parseJobFile, type JobLine } from '../../shared/inference/job-files.ts';
import type { LedgerServices } from '../ledger.ts';
import type { ReadableStore } from '../store.ts';
import type { Blobs } from './blobs.ts';
import type { RecordBook } from './record-book.ts';

/** What a job service reads of the ledger and signs into it. */
export interface JobLedger {
  book: Pick<RecordBook, 'publish' | 'self'>;
  network: NetworkConfig;
  snapshot: ReadableStore<LedgerSnapshot | null>;
  /** What this key may still spend: the balance net of its records not replayed yet. */
  admission: Pick<Admission, 'spendable'>;
  currentBlock(): number;
}

/** The job services' view of a node's ledger services. */
export function jobLedgerOf(ledger: Pick<LedgerServices, 'book' | 'network' | 'consensus' | 'admission'>): JobLedger {
  const { book, network, consensus, admission } = ledger;
  return { book, network, snapshot: consensus.snapshot, admission, currentBlock: () => consensus.currentBlock() };
}

export type JobBlobs = Pick<
  Blobs,
  'add' | 'serve' | 'unserve' | 'isServed' | 'fetch' | 'read' | 'has' | 'delete' | 'maxBlobBytes'
>;

/** How often the miner's and the auditor's repeating tasks look at the jobs. */
export const JOB_STEP_MS = 2000;
/** Epochs a miner keeps serving a shard's results after its job closed: the client fetches them after payment. */
export const RESULTS_KEPT_EPOCHS = 16;

/**
 * Job files fetched from jobs' clients and checked against the jobs' terms, kept parsed while the job is open.
 * A file this node fetched (not one it already held, like a client's own) is deleted once no open job names it.
 */
export class JobInputs {
  private readonly parsed = new Map<string, { hash: string; lines: JobLine[] }>();
  private readonly fetched = new Set<string>();

  constructor(private readonly blobs: Pick<JobBlobs, 'fetch' | 'read' | 'has' | 'delete' | 'maxBlobBytes'>) {}

  /**
   * The requests of job `jobId`: its file fetched from its client (or from `from`: any node serving it, the file is
   * named by its hash; or read, if held) and checked. Rejects with JobFileError (the file is not a job file for these
   * terms: the client's fault) or the fetch's error. `adopt`: a file already held counts as fetched for the job
   * (deleted with it), as after a restart of the node that fetched it.
   */
  async lines(
    jobId: string,
    job: Pick<JobState, 'client' | 'inputHash' | 'model' | 'maxTokens' | 'requests'>,
    options: { signal?: AbortSignal; from?: string; adopt?: boolean } = {},
  ): Promise<JobLine[]> {
    const known = this.parsed.get(jobId);
    if (known) return known.lines;
    const hash = job.inputHash;
    if (!(await this.blobs.has(hash))) {
      const maxBytes = Math.min(this.blobs.maxBlobBytes, job.requests * MAX_JOB_LINE_BYTES);
      await this.blobs.fetch(options.from ?? job.client, hash, { maxBytes, signal: options.signal });
      this.fetched.add(hash);
    } else if (options.adopt) this.fetched.add(hash);
    const lines = parseJobFile(await this.blobs.read(hash), job);
    this.parsed.set(jobId, { hash, lines });
    return lines;
  }

  /** Forget the jobs that are no longer open, and delete the files fetched for them alone. */
  async sweep(open: Readonly<Record<string, unknown>>): Promise<void> {
    for (const [jobId, { hash }] of [...this.parsed]) {
      if (open[jobId]) continue;
      this.parsed.delete(jobId);
      const stillNamed = [...this.parsed.values()].some((p) => p.hash === hash);
      if (this.fetched.has(hash) && !stillNamed) {
        this.fetched.delete(hash);
        await this.blobs.delete(hash);
      }
    }
  }
}

/** `work` one pass at a time: a call while a pass runs gets that pass (a timer's and a test's calls never overlap). */
export function oneAtATime(work: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  return () => (running ??= work().finally(() => (running = null)));
}
