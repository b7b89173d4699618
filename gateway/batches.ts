/**
 * OpenAI's Batch API on a batch job (docs/jobs.md): `POST /v1/batches` opens a job of the input file's compiled
 * requests through the gateway node's JobClient, paid from the gateway's own wallet (deposit = price per request ×
 * requests, refused above what the wallet may spend: nothing is signed then); `GET /v1/batches/{id}` follows the
 * job and, once it closes, assembles the output and error files; `POST /v1/batches/{id}/cancel` cancels it (the
 * requests no miner took are refunded at once); `GET /v1/webtensor/batches/quote` shows the price before a job
 * opens.
 *
 * completion_window: `<n>h`, `<n>m` or `<n>s` (OpenAI takes "24h" only) is the job's deadline, rounded up to whole
 * epochs and at most MAX_JOB_EPOCHS (64): "24h" is 20 epochs on the production network (exactly 24 h), and the
 * 64-epoch maximum (21 min) on the test network (batch-object.ts: deadlineEpochsOf).
 *
 * Batches live on disk under the gateway's data directory (`<dir>/<id>.json`, each written whole: batch-store.ts), so
 * a restart keeps them: a finished batch answers as it did, with its output and error files (files.ts), and one not
 * finished is followed again from where its job stands (the job's state is the ledger's, and what the node's job
 * client kept of it). At the start each batch is read back checked; one that is not what it should be is skipped
 * and logged, naming its file and what is wrong.
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { JobClient, JobStatus } from '../core/services/job-client.ts';
import { WebtensorError } from '../shared/errors.ts';
import type { NetworkConfig } from '../shared/ledger/config.ts';
import {
  batchNotFound,
  batchObject,
  batchRecordSchema,
  createSchema,
  deadlineEpochsOf,
  epochSeconds,
  jobView,
  now,
  shardsFor,
  TIMES,
  type BatchObject,
  type BatchRecord,
} from './batch-object.ts';
import { batchFiles } from './batch-output.ts';
import { readKept, writeWhole } from './batch-store.ts';
import { subnetOf } from './compile.ts';
import type { FileStore, InputSummary } from './files.ts';
import { ApiError, badRequest, parseRequest } from './openai.ts';

export type BatchJobs = Pick<JobClient, 'open' | 'status' | 'results' | 'cancel' | 'forget'>;
export interface BatchWallet {
  balance(): bigint;
  /** The balance net of this key's records not replayed yet. */
  spendable(): bigint;
}

export interface BatchInit {
  /** Where batches are kept. */
  dir: string;
  files: FileStore;
  /** The gateway node's job client and wallet (null before its ledger runs). */
  jobs: () => BatchJobs | null;
  wallet: () => BatchWallet | null;
  network: () => NetworkConfig | null;
  /** The block the network's clock is at. */
  currentBlock: () => number;
  /** Rao per request. */
  price: bigint;
  requestsPerShard: number;
  /** The per-blob limit: every shard's results must fit one blob. */
  maxBlobBytes: number;
  /** How long paid results that cannot be fetched are retried before the batch finalizes without them. */
  unavailableGraceMs?: number;
  stepMs?: number;
  log?: Logger;
}

/** How long a request waits for a batch's refresh before answering with what is known. */
const REFRESH_WAIT_MS = 2000;

export class BatchService {
  private readonly batches = new Map<string, BatchRecord>();
  private readonly refreshing = new Map<string, Promise<void>>();
  private timer: ReturnType<typeof setInterval> | null = null;
  /** Kept batches that did not read back at the start, each naming its file and what is wrong. */
  skipped: string[] = [];

  constructor(private readonly init: BatchInit) {}

  /** Read back the batches kept on disk (each checked) and follow those not finished. */
  async start(): Promise<void> {
    await mkdir(this.init.dir, { recursive: true });
    const { values, skipped } = await readKept(this.init.dir, 'a batch', batchRecordSchema, (b, id) =>
      b.id === id ? null : `it names ${b.id}`,
    );
    for (const b of values) this.batches.set(b.id, b);
    this.skipped = skipped;
    for (const problem of [...this.init.files.skipped, ...skipped])
      this.init.log?.warn({ problem }, 'kept data skipped');
    const open = values.filter((b) => !b.final).length;
    if (values.length > 0) this.init.log?.info({ batches: values.length, open }, 'batches read back');
    this.timer = setInterval(() => void this.step(), this.init.stepMs ?? 2000);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Follow every batch not done yet (the timer's work; tests call it). */
  async step(): Promise<void> {
    await Promise.all([...this.batches.values()].filter((b) => !b.final).map((b) => this.refresh(b)));
  }

  private network(): NetworkConfig {
    const network = this.init.network();
    if (!network) throw new ApiError(503, 'The gateway has not joined a network yet.', 'server_error', 'no_network');
    return network;
  }

  private wallet(): BatchWallet {
    const wallet = this.init.wallet();
    if (!wallet) throw new ApiError(503, 'The gateway has no wallet yet (no ledger).', 'server_error', 'no_wallet');
    return wallet;
  }

  private jobs(): BatchJobs {
    const jobs = this.init.jobs();
    if (!jobs) throw new ApiError(503, 'The gateway cannot open jobs (no ledger or blobs).', 'server_error', 'no_jobs');
    return jobs;
  }

  /** What a batch of input file `fileId` costs, and what the wallet holds. */
  quote(fileId: string, window?: string) {
    const input: InputSummary = this.init.files.input(fileId);
    const network = this.network();
    const wallet = this.wallet();
    const subnet = subnetOf(network, input.model);
    const deposit = this.init.price * BigInt(input.requests);
    const spendable = wallet.spendable();
    const epochs = window === undefined ? null : deadlineEpochsOf(window, network);
    return {
      object: 'webtensor.batch_quote' as const,
      input_file_id: fileId,
      model: input.model,
      netuid: subnet.netuid,
      requests: input.requests,
      max_tokens: input.maxTokens,
      shards: shardsFor(input.requests, input.maxTokens, this.init.requestsPerShard, this.init.maxBlobBytes),
      price_per_request_rao: this.init.price.toString(),
      deposit_rao: deposit.toString(),
      balance_rao: wallet.balance().toString(),
      spendable_rao: spendable.toString(),
      affordable: deposit <= spendable,
      ...(epochs === null
        ? {}
        : { deadline_epochs: epochs, expires_at: now() + Math.round(epochs * epochSeconds(this.network())) }),
    };
  }

  async create(body: unknown): Promise<BatchObject> {
    const req = parseRequest(createSchema, body);
    const network = this.network();
    const epochs = deadlineEpochsOf(req.completion_window, network);
    const quote = this.quote(req.input_file_id);
    if (!quote.affordable)
      throw new ApiError(
        400,
        `The deposit is ${quote.deposit_rao} rao (${quote.requests} requests × ${quote.price_per_request_rao} rao); ` +
          `the gateway's wallet can spend ${quote.spendable_rao} rao. Nothing was signed.`,
        'invalid_request_error',
        'insufficient_balance',
      );
    const lines = await this.init.files.jobLines(req.input_file_id);
    let job: string;
    try {
      job = await this.jobs().open({
        netuid: quote.netuid,
        lines,
        price: this.init.price,
        deadlineEpochs: epochs,
        shards: quote.shards,
      });
    } catch (err) {
      if (!(err instanceof WebtensorError)) throw err;
      const code =
        err.code === 'insufficient-funds' || err.code === 'overspend'
          ? 'insufficient_balance'
          : err.code.replaceAll('-', '_');
      throw new ApiError(400, `The job could not be opened: ${err.message}`, 'invalid_request_error', code);
    }
    const created = now();
    const batch: BatchRecord = {
      id: `batch_${randomBytes(12).toString('hex')}`,
      input_file_id: req.input_file_id,
      endpoint: req.endpoint,
      completion_window: req.completion_window,
      metadata: req.metadata ?? null,
      created_at: created,
      expires_at: created + Math.round(epochs * epochSeconds(this.network())),
      times: Object.fromEntries(TIMES.map((t) => [t, null])) as BatchRecord['times'],
      job,
      model: quote.model,
      requests: quote.requests,
      shards: quote.shards,
      deadline_epochs: epochs,
      price: quote.price_per_request_rao,
      deposit: quote.deposit_rao,
      kinds: this.init.files.input(req.input_file_id).kinds,
      cancel_requested: false,
      cancel_sent: false,
      unavailable_since: null,
      final: null,
    };
    this.batches.set(batch.id, batch);
    await this.save(batch);
    this.init.log?.info({ batch: batch.id, job, requests: batch.requests, deposit: batch.deposit }, 'batch opened');
    return this.view(batch);
  }

  private get(id: string): BatchRecord {
    const batch = this.batches.get(id);
    if (!batch) throw batchNotFound(id);
    return batch;
  }

  async retrieve(id: string) {
    const batch = this.get(id);
    await this.settle(batch);
    return this.view(batch);
  }

  /**
   * Bring the batch up to date before answering, waiting at most `REFRESH_WAIT_MS`: assembling a closed job's files
   * fetches results from miners, and a request answers "finalizing" meanwhile rather than wait for it.
   */
  private async settle(batch: BatchRecord): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const wait = new Promise<void>((resolve) => (timer = setTimeout(resolve, REFRESH_WAIT_MS)));
    await Promise.race([this.refresh(batch), wait]);
    clearTimeout(timer);
  }

  async list(after: string | undefined, limit: number) {
    const all = [...this.batches.values()].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
    const start = after === undefined ? 0 : all.findIndex((b) => b.id === after) + 1;
    const page = all.slice(start, start + limit);
    await Promise.all(page.map((b) => this.settle(b)));
    const data = page.map((b) => this.view(b));
    return {
      object: 'list',
      data,
      first_id: data[0]?.id ?? null,
      last_id: data.at(-1)?.id ?? null,
      has_more: start + limit < all.length,
    };
  }

  async cancel(id: string) {
    const batch = this.get(id);
    await this.settle(batch);
    const status = batch.final ? null : (this.init.jobs()?.status(batch.job) ?? null);
    if (batch.final || batch.cancel_requested || status?.phase === 'closed')
      throw badRequest(
        `Batch ${id} is ${this.view(batch).status}; only a batch that is validating or in progress can be cancelled.`,
      );
    if (status && this.init.currentBlock() >= status.deadline)
      throw badRequest(
        `Batch ${id} is past its completion window (the job's deadline, block ${status.deadline}): it settles by itself, refunding what no miner did.`,
        null,
        'batch_expired',
      );
    batch.cancel_requested = true;
    batch.times.cancelling_at = now();
    await this.save(batch);
    // An open job is cancelled now; one not replayed yet as soon as it is (refresh).
    await this.settle(batch);
    return this.view(batch);
  }

  /** Follow the batch's job one step: note its phases, cancel it when asked, assemble its files once it closes. */
  private refresh(batch: BatchRecord): Promise<void> {
    let running = this.refreshing.get(batch.id);
    if (!running) {
      running = this.advance(batch)
        .catch((err: unknown) =>
          this.init.log?.warn({ batch: batch.id, error: (err as Error).message }, 'batch step failed'),
        )
        .finally(() => this.refreshing.delete(batch.id));
      this.refreshing.set(batch.id, running);
    }
    return running;
  }

  private async advance(batch: BatchRecord): Promise<void> {
    if (batch.final) return;
    const jobs = this.init.jobs();
    const status = jobs?.status(batch.job) ?? null;
    if (!jobs || !status) return;
    const before = JSON.stringify(batch);
    if (status.phase === 'refused') {
      batch.times.failed_at = now();
      batch.final = {
        status: 'failed',
        output_file_id: null,
        error_file_id: null,
        completed: 0,
        failed: 0,
        errors: [
          { code: 'job_refused', message: `The ledger refused the job: ${status.reason}`, param: null, line: null },
        ],
        job: null,
      };
    } else if (status.phase === 'open') {
      batch.times.in_progress_at ??= now();
      if (status.cancelled) batch.times.cancelling_at ??= now();
      else if (batch.cancel_requested && !batch.cancel_sent && this.init.currentBlock() < status.deadline) {
        batch.cancel_sent = true;
        await this.save(batch);
        await jobs.cancel(batch.job);
      }
    } else if (status.phase === 'closed') {
      batch.times.in_progress_at ??= now();
      batch.times.finalizing_at ??= now();
      await this.assemble(batch, jobs, status);
    }
    if (JSON.stringify(batch) !== before) await this.save(batch);
  }

  /** The closed job's output and error files; paid results that cannot be fetched are retried for a while. */
  private async assemble(batch: BatchRecord, jobs: BatchJobs, status: JobStatus): Promise<void> {
    const lines = await jobs.results(batch.job);
    const unavailable = lines.some((l) => 'error' in l && l.error.code !== 'refunded');
    if (unavailable) {
      batch.unavailable_since ??= Date.now();
      if (Date.now() - batch.unavailable_since < (this.init.unavailableGraceMs ?? 120_000)) return;
    }
    const files = batchFiles(batch.job, batch.model, batch.kinds, lines, status.cancelled);
    const add = (text: string | null, name: string) =>
      text === null ? null : this.init.files.add(Buffer.from(text), `${batch.id}_${name}.jsonl`, 'batch_output');
    const output = await add(files.output, 'output');
    const errors = await add(files.errors, 'error');
    const final = status.cancelled
      ? 'cancelled'
      : status.shards.every((s) => s.status === 'paid')
        ? 'completed'
        : 'expired';
    batch.times[`${final}_at`] = now();
    batch.final = {
      status: final,
      output_file_id: output?.id ?? null,
      error_file_id: errors?.id ?? null,
      completed: files.completed,
      failed: files.failed,
      errors: [],
      job: jobView(status),
    };
    this.init.log?.info(
      {
        batch: batch.id,
        job: batch.job,
        status: final,
        completed: files.completed,
        failed: files.failed,
        paid: status.paid.toString(),
      },
      'batch done',
    );
    // Done with the job here: its job file and fetched results go (the output is kept in the files).
    await jobs.forget(batch.job).catch(() => {});
  }

  /** The OpenAI Batch object, with the job as last seen. */
  view(batch: BatchRecord): BatchObject {
    return batchObject(batch, batch.final ? null : (this.init.jobs()?.status(batch.job) ?? null), this.init.network());
  }

  private async save(batch: BatchRecord): Promise<void> {
    await writeWhole(join(this.init.dir, `${batch.id}.json`), JSON.stringify(batch));
  }
}

export function registerBatchRoutes(app: FastifyInstance, batches: BatchService): void {
  app.post('/v1/batches', async (req) => batches.create(req.body));
  app.get<{ Querystring: { after?: string; limit?: string } }>('/v1/batches', async (req) => {
    const limit = req.query.limit === undefined ? 20 : Number(req.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100)
      throw badRequest(`Invalid value for 'limit': ${req.query.limit}; 1 to 100.`, 'limit', 'invalid_value');
    return batches.list(req.query.after, limit);
  });
  app.get<{ Params: { id: string } }>('/v1/batches/:id', async (req) => batches.retrieve(req.params.id));
  app.post<{ Params: { id: string } }>('/v1/batches/:id/cancel', async (req) => batches.cancel(req.params.id));
  app.get<{ Querystring: { input_file_id?: string; completion_window?: string } }>(
    '/v1/webtensor/batches/quote',
    async (req) => {
      if (!req.query.input_file_id)
        throw badRequest("Missing required parameter: 'input_file_id'.", 'input_file_id', 'missing_required_parameter');
      return batches.quote(req.query.input_file_id, req.query.completion_window);
    },
  );
}
