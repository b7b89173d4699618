/**
 * What a JobClient keeps across restarts (docs/jobs.md, "The services"): each of its jobs as it last saw it, one
 * value per job in the platform's JobMemoryStore (SQLite in a Node data directory, IndexedDB in a tab). A closed job
 * leaves the ledger's state, and a replay reports its settlement only for a while, so this is how a client still
 * knows, after a restart, which shards of a closed job were paid, to whom, and the hash of their results.
 *
 * A value is `{"v": 1, "job": <JobStatus, amounts as decimal strings>}`. Reading one back checks everything about it
 * (the format, every field, the shard ranges, the amounts adding up for a closed job) and names what is wrong.
 */
import { z } from 'zod';
import { shardRange } from '../../shared/ledger/jobs.ts';
import { MAX_JOB_REQUESTS, MAX_JOB_SHARDS, MAX_JOB_TOKENS } from '../../shared/ledger/records.ts';
import type { JobMemoryStore } from '../platform.ts';
import type { JobStatus } from './job-client.ts';

/** Closed and refused jobs a client keeps (the oldest go first); open and pending ones are always kept. */
export const MAX_KEPT_JOBS = 128;

/** The format of the values written; a value of another version is refused by name. */
const VERSION = 1;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected a sha256, 64 lowercase hex characters');
const rao = z.string().regex(/^(0|[1-9]\d{0,39})$/, 'expected an amount in rao, a decimal string');
const block = z.number().int().nonnegative();
const peer = z.string().min(1).max(128);

const shardSchema = z.strictObject({
  shard: z.number().int().nonnegative(),
  first: z.number().int().nonnegative(),
  end: z.number().int().nonnegative(),
  status: z.enum(['open', 'claimed', 'result', 'paid', 'refunded']),
  miner: peer.nullable(),
  resultsHash: hex64.nullable(),
  until: block.nullable(),
});

const jobSchema = z.strictObject({
  id: hex64,
  phase: z.enum(['pending', 'open', 'closed', 'refused']),
  reason: z.string().max(2000).nullable(),
  client: peer,
  netuid: z.number().int().nonnegative(),
  model: z.string().min(1).max(256),
  requests: z.number().int().min(1).max(MAX_JOB_REQUESTS),
  inputHash: hex64,
  price: rao,
  maxTokens: z.number().int().min(1).max(MAX_JOB_TOKENS),
  openedAt: block,
  deadline: block,
  cancelled: z.boolean(),
  deposit: rao,
  paid: rao,
  refunded: rao,
  forfeited: rao,
  shards: z.array(shardSchema).min(1).max(MAX_JOB_SHARDS),
  closedAt: block.nullable(),
});

const storedSchema = z.strictObject({ v: z.number(), job: z.unknown() });

/** The value kept for `job`. */
export function jobMemoryText(job: JobStatus): string {
  const amounts = {
    price: job.price.toString(),
    deposit: job.deposit.toString(),
    paid: job.paid.toString(),
    refunded: job.refunded.toString(),
    forfeited: job.forfeited.toString(),
  };
  return JSON.stringify({ v: VERSION, job: { ...job, ...amounts } });
}

/** The job kept under `key` as `text`; throws an Error whose message names what is wrong with it. */
export function readJobMemory(key: string, text: string): JobStatus {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON (${(err as Error).message})`, { cause: err });
  }
  const stored = storedSchema.safeParse(raw);
  if (!stored.success) throw new Error(`expected {"v", "job"}: ${issueOf(stored.error, [])}`);
  if (stored.data.v !== VERSION)
    throw new Error(`written in format ${JSON.stringify(stored.data.v)}; this version reads format ${VERSION}`);
  const parsed = jobSchema.safeParse(stored.data.job);
  if (!parsed.success) throw new Error(issueOf(parsed.error, ['job']));
  const j = parsed.data;
  if (j.id !== key) throw new Error(`kept under ${key} but names job ${j.id}`);
  const job: JobStatus = {
    ...j,
    price: BigInt(j.price),
    deposit: BigInt(j.deposit),
    paid: BigInt(j.paid),
    refunded: BigInt(j.refunded),
    forfeited: BigInt(j.forfeited),
  };
  const n = job.shards.length;
  if (n > job.requests) throw new Error(`job.shards: ${n} shards for ${job.requests} requests`);
  for (const [k, s] of job.shards.entries()) {
    const [first, end] = shardRange(job.requests, n, k);
    if (s.shard !== k || s.first !== first || s.end !== end)
      throw new Error(
        `job.shards.${k}: shard ${s.shard} covering [${s.first}, ${s.end}) where shard ${k} of ${n} covers [${first}, ${end})`,
      );
    if (s.status === 'paid' && (s.miner === null || s.resultsHash === null))
      throw new Error(`job.shards.${k}: paid without a miner and a results hash`);
  }
  if (job.deposit !== job.price * BigInt(job.requests))
    throw new Error(`job.deposit: ${job.deposit} rao is not price × requests (${job.price} × ${job.requests})`);
  if (job.phase === 'closed') {
    if (job.closedAt === null) throw new Error('job.closedAt: a closed job without the block it closed at');
    const open = job.shards.findIndex((s) => s.status !== 'paid' && s.status !== 'refunded');
    if (open >= 0) throw new Error(`job.shards.${open}: ${job.shards[open]!.status} in a closed job`);
    if (job.paid + job.refunded !== job.deposit)
      throw new Error(
        `job.paid: ${job.paid} rao paid and ${job.refunded} refunded do not add up to the deposit, ${job.deposit}`,
      );
  }
  return job;
}

/** The first issue, as `where: what` (`where` the path from `root`). */
function issueOf(error: z.ZodError, root: string[]): string {
  const issue = error.issues[0]!;
  return `${[...root, ...issue.path.map(String)].join('.') || 'the value'}: ${issue.message}`;
}

/** A JobMemoryStore in memory: for tests, and for a node whose platform keeps nothing (it forgets at a restart). */
export class MemoryJobMemoryStore implements JobMemoryStore {
  readonly values = new Map<string, string>();

  async all(): Promise<{ key: string; value: string }[]> {
    return [...this.values].map(([key, value]) => ({ key, value }));
  }

  async put(key: string, value: string): Promise<void> {
    this.values.set(key, value);
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) this.values.delete(key);
  }
}
