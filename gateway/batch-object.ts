/**
 * A batch's terms, how it is kept, and OpenAI's Batch object made from it: the create request's schema, the
 * completion window as a job deadline, the shard count, the record kept on disk, and the status a batch shows for
 * its job's phase. No I/O here.
 */
import { z } from 'zod';
import type { JobStatus } from '../core/services/job-client.ts';
import { resultLineBound } from '../shared/inference/job-files.ts';
import { epochBlocks, type NetworkConfig } from '../shared/ledger/config.ts';
import { MAX_JOB_EPOCHS } from '../shared/ledger/jobs.ts';
import { MAX_JOB_SHARDS } from '../shared/ledger/records.ts';
import { ApiError, badRequest } from './openai.ts';

/** Requests per shard the gateway aims for (a job of 200 requests: 8 shards), and price per request by default. */
export const DEFAULT_REQUESTS_PER_SHARD = 25;
export const DEFAULT_BATCH_PRICE = 1_000_000n;

export const ENDPOINTS = ['/v1/chat/completions', '/v1/completions'] as const;

export const createSchema = z.object({
  input_file_id: z.string().min(1).max(64),
  endpoint: z.enum(ENDPOINTS, { error: 'this network serves /v1/chat/completions and /v1/completions' }),
  completion_window: z.string().max(16),
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, 'at most 16 keys')
    .nullish(),
});

/** Epochs until the deadline for an OpenAI completion window ("24h"; also "<n>m", "<n>s"), or a 400. */
export function deadlineEpochsOf(window: string, network: NetworkConfig): number {
  const m = /^([1-9]\d{0,5})([hms])$/.exec(window);
  if (!m)
    throw badRequest(
      `Invalid value for 'completion_window': '${window}'. Use '24h' (or a number of hours, minutes or seconds: '2h', '30m').`,
      'completion_window',
      'invalid_value',
    );
  const seconds = Number(m[1]) * { h: 3600, m: 60, s: 1 }[m[2] as 'h' | 'm' | 's'];
  return Math.min(MAX_JOB_EPOCHS, Math.max(1, Math.ceil(seconds / epochSeconds(network))));
}

export const epochSeconds = (network: NetworkConfig): number => (epochBlocks(network) * network.blockMs) / 1000;

/** Shards for a job: about `perShard` requests each, enough that every shard's results fit a blob. */
export function shardsFor(requests: number, maxTokens: number, perShard: number, maxBlobBytes: number): number {
  const fitting = Math.max(1, Math.floor(maxBlobBytes / resultLineBound(maxTokens)));
  const wanted = Math.max(Math.ceil(requests / perShard), Math.ceil(requests / fitting));
  return Math.max(1, Math.min(wanted, MAX_JOB_SHARDS, requests));
}

export type BatchStatus =
  'validating' | 'failed' | 'in_progress' | 'finalizing' | 'completed' | 'expired' | 'cancelling' | 'cancelled';

export const TIMES = [
  'in_progress_at',
  'finalizing_at',
  'completed_at',
  'failed_at',
  'expired_at',
  'cancelling_at',
  'cancelled_at',
] as const;

export interface BatchError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

/** What the batch object's `webtensor` member shows of the job. */
export interface JobView {
  paid_rao: string;
  refunded_rao: string;
  forfeited_rao: string;
  deadline_block: number;
  shards: { shard: number; first: number; end: number; status: string; miner: string | null }[];
}

export const jobView = (s: JobStatus): JobView => ({
  paid_rao: s.paid.toString(),
  refunded_rao: s.refunded.toString(),
  forfeited_rao: s.forfeited.toString(),
  deadline_block: s.deadline,
  shards: s.shards.map(({ shard, first, end, status, miner }) => ({ shard, first, end, status, miner })),
});

/** A batch as kept on disk. */
export interface BatchRecord {
  id: string;
  input_file_id: string;
  endpoint: string;
  completion_window: string;
  metadata: Record<string, string> | null;
  created_at: number;
  /** Until the job's deadline is known: created_at + its epochs. */
  expires_at: number;
  times: Record<(typeof TIMES)[number], number | null>;
  job: string;
  model: string;
  requests: number;
  shards: number;
  deadline_epochs: number;
  price: string;
  deposit: string;
  /** Each line's endpoint ('c' chat, 't' text completion). */
  kinds: string;
  cancel_requested: boolean;
  /** Whether the gateway signed the job's `job.cancel` (once: after a restart too). */
  cancel_sent: boolean;
  /** When fetching paid results first failed (they are retried for a while). */
  unavailable_since: number | null;
  /** Once the batch is done: what it came to. */
  final: {
    status: 'completed' | 'expired' | 'cancelled' | 'failed';
    output_file_id: string | null;
    error_file_id: string | null;
    completed: number;
    failed: number;
    errors: BatchError[];
    job: JobView | null;
  } | null;
}

const count = z.number().int().nonnegative();
const raoText = z.string().regex(/^(0|[1-9]\d{0,39})$/, 'expected an amount in rao, a decimal string');

const jobViewSchema = z.strictObject({
  paid_rao: raoText,
  refunded_rao: raoText,
  forfeited_rao: raoText,
  deadline_block: count,
  shards: z.array(
    z.strictObject({
      shard: count,
      first: count,
      end: count,
      status: z.enum(['open', 'claimed', 'result', 'paid', 'refunded']),
      miner: z.string().nullable(),
    }),
  ),
});

/** A batch as read back from disk: every field checked (`cancel_sent` came later: false when absent). */
export const batchRecordSchema: z.ZodType<BatchRecord, unknown> = z
  .strictObject({
    id: z.string().regex(/^batch_[0-9a-f]{24}$/, 'expected batch_<24 hex digits>'),
    input_file_id: z.string().min(1).max(64),
    endpoint: z.enum(ENDPOINTS),
    completion_window: z.string().max(16),
    metadata: z.record(z.string(), z.string()).nullable(),
    created_at: count,
    expires_at: count,
    times: z.strictObject(
      Object.fromEntries(TIMES.map((t) => [t, count.nullable()])) as Record<
        (typeof TIMES)[number],
        z.ZodNullable<typeof count>
      >,
    ),
    job: z.string().min(1).max(128),
    model: z.string().min(1).max(256),
    requests: z.number().int().min(1),
    shards: z.number().int().min(1).max(MAX_JOB_SHARDS),
    deadline_epochs: z.number().int().min(1).max(MAX_JOB_EPOCHS),
    price: raoText,
    deposit: raoText,
    kinds: z.string().regex(/^[ct]+$/, "expected one 'c' or 't' per request"),
    cancel_requested: z.boolean(),
    cancel_sent: z.boolean().default(false),
    unavailable_since: count.nullable(),
    final: z
      .strictObject({
        status: z.enum(['completed', 'expired', 'cancelled', 'failed']),
        output_file_id: z.string().nullable(),
        error_file_id: z.string().nullable(),
        completed: count,
        failed: count,
        errors: z.array(
          z.strictObject({
            code: z.string(),
            message: z.string(),
            param: z.string().nullable(),
            line: count.nullable(),
          }),
        ),
        job: jobViewSchema.nullable(),
      })
      .nullable(),
  })
  .refine((b) => b.kinds.length === b.requests, { message: 'expected one kind per request', path: ['kinds'] });

export const now = (): number => Math.floor(Date.now() / 1000);

export const batchNotFound = (id: string) =>
  new ApiError(404, `No such Batch object: ${id}.`, 'invalid_request_error', 'batch_not_found', 'batch_id');

/**
 * Where a batch stands: its final state once done; else from its job (`status`, null when the job client does not
 * know it yet): validating until the `job.open` is replayed, in progress, cancelling, finalizing once it closed.
 * `completed` counts the requests of paid shards, `failed` of refunded ones.
 */
export function batchState(
  batch: BatchRecord,
  status: JobStatus | null,
): { status: BatchStatus; completed: number; failed: number; job: JobView | null } {
  if (batch.final)
    return {
      status: batch.final.status,
      completed: batch.final.completed,
      failed: batch.final.failed,
      job: batch.final.job,
    };
  const count = (state: string) =>
    status?.shards.filter((x) => x.status === state).reduce((n, x) => n + x.end - x.first, 0) ?? 0;
  const s: BatchStatus =
    !status || status.phase === 'pending'
      ? batch.cancel_requested
        ? 'cancelling'
        : 'validating'
      : status.phase === 'closed'
        ? 'finalizing'
        : status.cancelled || batch.cancel_requested
          ? 'cancelling'
          : 'in_progress';
  return { status: s, completed: count('paid'), failed: count('refunded'), job: status ? jobView(status) : null };
}

/** OpenAI's Batch object, with a `webtensor` member: the job, its price, its deposit and what it paid. */
export function batchObject(batch: BatchRecord, status: JobStatus | null, network: NetworkConfig | null) {
  const { status: state, completed, failed, job } = batchState(batch, status);
  const expires =
    job && network ? Math.floor((network.genesisMs + job.deadline_block * network.blockMs) / 1000) : batch.expires_at;
  return {
    id: batch.id,
    object: 'batch' as const,
    endpoint: batch.endpoint,
    model: batch.model,
    errors: batch.final?.errors.length ? { object: 'list' as const, data: batch.final.errors } : null,
    input_file_id: batch.input_file_id,
    completion_window: batch.completion_window,
    status: state,
    output_file_id: batch.final?.output_file_id ?? null,
    error_file_id: batch.final?.error_file_id ?? null,
    created_at: batch.created_at,
    expires_at: expires,
    ...batch.times,
    request_counts: { total: batch.requests, completed, failed },
    metadata: batch.metadata,
    webtensor: {
      job: batch.job,
      shard_count: batch.shards,
      deadline_epochs: batch.deadline_epochs,
      price_per_request_rao: batch.price,
      deposit_rao: batch.deposit,
      paid_rao: job?.paid_rao ?? '0',
      refunded_rao: job?.refunded_rao ?? '0',
      forfeited_rao: job?.forfeited_rao ?? '0',
      deadline_block: job?.deadline_block ?? null,
      shards: job?.shards ?? [],
    },
  };
}
export type BatchObject = ReturnType<typeof batchObject>;
