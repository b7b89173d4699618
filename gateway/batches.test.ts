/**
 * The Batch API through the gateway's real Fastify app (inject): uploads compiled line by line with every bad line
 * named by its number, the file limits, the price shown before a job opens, every refusal of a batch (bad
 * completion_window, unknown ids, unknown endpoint, a deposit above the wallet's balance: nothing signed), and a
 * batch's life against a job client: validating, in progress, completed with its output file, cancelled, expired,
 * failed, results that cannot be fetched, and a restart that keeps what was done. One test opens through the real
 * JobClient to check the `job.open` it signs (and that it signs nothing when refused).
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { JobClient, type JobOutputLine, type JobStatus } from '../core/services/job-client.ts';
import type { JobBlobs } from '../core/services/jobs.ts';
import { Store } from '../core/store.ts';
import type { JobLine } from '../shared/inference/job-files.ts';
import type { GenerateResult } from '../shared/inference/protocol.ts';
import { productionProfile, testProfile } from '../shared/ledger/profiles.ts';
import type { LedgerSnapshot } from '../shared/ledger/snapshot.ts';
import { deadlineEpochsOf, shardsFor } from './batch-object.ts';
import { BatchService, type BatchJobs } from './batches.ts';
import { plainTemplate } from './chat-template.ts';
import { FileStore } from './files.ts';
import { MinerRouter } from './router.ts';
import { buildGateway } from './server.ts';

const network = testProfile(Date.now() - 1000 * 1000);
const MODEL = 'webtensor/tiny-llama';
const PRICE = 1_000_000n;
const MAX_FILE = 64 * 1024;

const chatLine = (id: string, extra: Record<string, unknown> = {}) => ({
  custom_id: id,
  method: 'POST',
  url: '/v1/chat/completions',
  body: { model: MODEL, messages: [{ role: 'user', content: `Hello ${id}` }], max_tokens: 4, ...extra },
});
const textLine = (id: string, extra: Record<string, unknown> = {}) => ({
  custom_id: id,
  method: 'POST',
  url: '/v1/completions',
  body: { model: MODEL, prompt: `Once ${id}`, max_tokens: 3, ...extra },
});
const jsonl = (lines: readonly unknown[]) =>
  lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
const good = (n: number) => jsonl(Array.from({ length: n }, (_, k) => (k % 2 ? textLine(`r${k}`) : chatLine(`r${k}`))));

/** A job client whose job the test moves through its phases. */
class FakeJobs implements BatchJobs {
  opened: Parameters<BatchJobs['open']>[0][] = [];
  cancelled: string[] = [];
  forgotten: string[] = [];
  state: JobStatus | null = null;
  lines: JobOutputLine[] = [];
  async open(req: Parameters<BatchJobs['open']>[0]) {
    this.opened.push(req);
    const lines = req.lines as JobLine[];
    const shards = Array.from({ length: req.shards }, (_, shard) => {
      const first = Math.floor((shard * lines.length) / req.shards);
      const end = Math.floor(((shard + 1) * lines.length) / req.shards);
      return { shard, first, end, status: 'open' as const, miner: null, resultsHash: null, until: null };
    });
    this.state = {
      id: 'job-1',
      phase: 'pending',
      reason: null,
      client: 'gw',
      netuid: req.netuid,
      model: MODEL,
      requests: lines.length,
      inputHash: 'ab'.repeat(32),
      price: BigInt(req.price),
      maxTokens: 4,
      openedAt: 100,
      deadline: 100 + req.deadlineEpochs * 20,
      cancelled: false,
      deposit: BigInt(req.price) * BigInt(lines.length),
      paid: 0n,
      refunded: 0n,
      forfeited: 0n,
      shards,
      closedAt: null,
    };
    this.lines = lines.map((l, k) => ({ custom_id: l.custom_id, result: result(k) }));
    return 'job-1';
  }
  status() {
    return this.state;
  }
  async results() {
    return this.lines;
  }
  async cancel(id: string) {
    this.cancelled.push(id);
  }
  async forget(id: string) {
    this.forgotten.push(id);
  }
  /** Settle every shard with `status`, and close the job. */
  close(statusOf: (shard: number) => 'paid' | 'refunded', cancelled = false) {
    const s = this.state!;
    s.shards = s.shards.map((x) => ({
      ...x,
      status: statusOf(x.shard),
      miner: statusOf(x.shard) === 'paid' ? 'miner-a' : null,
    }));
    const count = (st: string) =>
      BigInt(s.shards.filter((x) => x.status === st).reduce((n, x) => n + x.end - x.first, 0));
    Object.assign(s, {
      phase: 'closed',
      cancelled,
      paid: count('paid') * s.price,
      refunded: count('refunded') * s.price,
      closedAt: 200,
    });
    this.lines = this.lines.map((l, k) => {
      const shard = s.shards.find((x) => k >= x.first && k < x.end)!;
      return shard.status === 'paid'
        ? { custom_id: l.custom_id, result: result(k) }
        : { custom_id: l.custom_id, error: { code: 'refunded' as const, message: 'refunded' } };
    });
  }
}

function result(k: number): GenerateResult {
  return {
    requestId: `job-1:${k}`,
    miner: 'miner-a',
    model: MODEL,
    paramsHash: '0'.repeat(64),
    modelHash: '1'.repeat(64),
    text: ` answer ${k}`,
    tokenIds: [5, 6, 7],
    candidates: [],
    outputHash: '2'.repeat(64),
    promptTokens: 9,
    finish: 'length',
    queueMs: 0,
    inferMs: 1,
    sig: 'sig',
  };
}

/** An output or error file's line, as far as the tests read it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed JSON line, read by path
type Line = Record<string, any>;

let dir: string;
let jobs: FakeJobs;
let wallet: { balance: bigint; spendable: bigint };
let block: number;
let service: BatchService;
let app: FastifyInstance;

async function gateway(jobClient: BatchJobs = jobs, opts: { grace?: number } = {}) {
  const files = new FileStore(join(dir, 'files'));
  await files.load();
  service = new BatchService({
    dir: join(dir, 'batches'),
    files,
    jobs: () => jobClient,
    wallet: () => ({ balance: () => wallet.balance, spendable: () => wallet.spendable }),
    network: () => network,
    currentBlock: () => block,
    price: PRICE,
    requestsPerShard: 25,
    maxBlobBytes: 32 * 1024 * 1024,
    unavailableGraceMs: opts.grace ?? 0,
    stepMs: 3_600_000,
  });
  await service.start();
  app = await buildGateway({
    network: () => network,
    router: new MinerRouter({ client: { candidates: () => [], infer: async () => Promise.reject(new Error('no')) } }),
    templates: async () => ({ kind: 'plain', render: plainTemplate }),
    apiKeys: [],
    corsOrigin: '*',
    ratePerMinute: 10_000,
    bodyLimit: 256 * 1024,
    deadlineMs: 1000,
    batch: { files, batches: service, maxFileBytes: MAX_FILE },
  });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'batches-test-'));
  jobs = new FakeJobs();
  wallet = { balance: 10n ** 12n, spendable: 10n ** 12n };
  block = 100;
  await gateway();
});

afterEach(async () => {
  service.stop();
  await app.close();
});

/** Upload `content` as OpenAI's clients do (multipart: file, then purpose). */
async function upload(content: string | Uint8Array<ArrayBuffer>, purpose: string | null = 'batch') {
  const form = new FormData();
  form.append('file', new Blob([content]), 'batch.jsonl');
  if (purpose !== null) form.append('purpose', purpose);
  const request = new Request('http://x/', { method: 'POST', body: form });
  return app.inject({
    method: 'POST',
    url: '/v1/files',
    headers: { 'content-type': request.headers.get('content-type')! },
    payload: Buffer.from(await request.arrayBuffer()),
  });
}

const error = (r: { json(): unknown }) => (r.json() as { error: Record<string, unknown> }).error;

async function fileOf(content: string): Promise<string> {
  const r = await upload(content);
  expect(r.statusCode).toBe(200);
  return (r.json() as { id: string }).id;
}

const createBatch = (body: Record<string, unknown>) =>
  app.inject({ method: 'POST', url: '/v1/batches', payload: body });

async function batchOf(n: number, window = '24h') {
  const input_file_id = await fileOf(good(n));
  const r = await createBatch({ input_file_id, endpoint: '/v1/chat/completions', completion_window: window });
  expect(r.statusCode).toBe(200);
  return r.json() as { id: string; status: string; webtensor: Record<string, unknown> };
}

const get = async (url: string) => (await app.inject({ method: 'GET', url })).json() as Record<string, never>;

describe('uploads', () => {
  it('compiles a file of chat and completion lines, and keeps it as it came', async () => {
    const content = good(6);
    const r = await upload(content);
    expect(r.statusCode).toBe(200);
    const file = r.json() as { id: string };
    expect(file).toMatchObject({
      object: 'file',
      purpose: 'batch',
      bytes: content.length,
      filename: 'batch.jsonl',
      status: 'processed',
    });
    expect((await app.inject({ method: 'GET', url: `/v1/files/${file.id}/content` })).body).toBe(content);
    expect(await get(`/v1/files/${file.id}`)).toEqual(file);
    expect((await get('/v1/files')).data).toEqual([file]);
    // The job lines are what the live endpoints would generate from: the chat template, max_tokens.
    expect(await service['init'].files.jobLines(file.id)).toEqual([
      { custom_id: 'r0', params: { model: MODEL, prompt: 'User: Hello r0\nAssistant:', maxNewTokens: 4 } },
      { custom_id: 'r1', params: { model: MODEL, prompt: 'Once r1', maxNewTokens: 3 } },
      ...Array.from({ length: 4 }, () => expect.anything()),
    ]);
    const del = await app.inject({ method: 'DELETE', url: `/v1/files/${file.id}` });
    expect(del.json()).toEqual({ id: file.id, object: 'file', deleted: true });
    expect((await app.inject({ method: 'GET', url: `/v1/files/${file.id}` })).statusCode).toBe(404);
  });

  it('fixes a sampled request without a seed to one seed, so every miner and validator runs the same', async () => {
    const id = await fileOf(jsonl([textLine('a', { temperature: 0.8 })]));
    const [line] = await service['init'].files.jobLines(id);
    expect(line!.params.sampling).toMatchObject({ temperature: 0.8, seed: expect.any(Number) });
  });

  const badLines: [string, unknown[], number, Record<string, unknown>][] = [
    ['a line that is not JSON', [chatLine('a'), chatLine('b'), '{"custom_id": "c",'], 3, { code: 'invalid_json' }],
    ['an empty line', [chatLine('a'), '', chatLine('b')], 2, { code: 'invalid_json' }],
    ['a line that is an array', [[1, 2]], 1, { code: 'invalid_value' }],
    [
      'a line without custom_id',
      [chatLine('a'), { method: 'POST', url: '/v1/completions', body: {} }],
      2,
      { param: 'custom_id', code: 'missing_required_parameter' },
    ],
    ['a GET', [{ ...chatLine('a'), method: 'GET' }], 1, { param: 'method' }],
    ['an endpoint the network does not serve', [{ ...chatLine('a'), url: '/v1/embeddings' }], 1, { param: 'url' }],
    ['a body that is not an object', [{ ...chatLine('a'), body: 'hi' }], 1, { param: 'body' }],
    [
      'max_tokens over 128',
      [chatLine('a'), textLine('b', { max_tokens: 1000 })],
      2,
      { param: 'body.max_tokens', code: 'invalid_value' },
    ],
    [
      'a chat line without messages',
      [{ ...chatLine('a'), body: { model: MODEL } }],
      1,
      { param: 'body.messages', code: 'missing_required_parameter' },
    ],
    [
      'an unknown model',
      [chatLine('a'), chatLine('b', { model: 'nobody/serves-this' })],
      2,
      { param: 'body.model', code: 'model_not_found' },
    ],
    ['a streamed request', [textLine('a', { stream: true })], 1, { param: 'body.stream' }],
    [
      'a custom_id used twice',
      [chatLine('a'), textLine('b'), textLine('a')],
      3,
      { param: 'custom_id', code: 'duplicate_custom_id' },
    ],
    [
      'a prompt too long',
      [textLine('a', { prompt: 'x'.repeat(2001) })],
      1,
      { param: 'body.prompt', code: 'context_length_exceeded' },
    ],
    ['an unsupported parameter', [chatLine('a', { tools: [{}] })], 1, { param: 'body.tools' }],
  ];
  it.each(badLines)('refuses %s, naming the line', async (_name, lines, line, fields) => {
    const r = await upload(jsonl(lines));
    expect(r.statusCode).toBe(400);
    const e = error(r);
    expect(e).toMatchObject({ type: 'invalid_request_error', line, ...fields });
    expect(e['message']).toMatch(new RegExp(`^Line ${line} of the file: `));
    expect((await get('/v1/files')).data).toEqual([]);
  });

  it('refuses a file over the size limit with 413, an empty file, non-UTF-8 bytes, a wrong purpose and JSON', async () => {
    const big = await upload(good(1) + 'x'.repeat(MAX_FILE));
    expect(big.statusCode).toBe(413);
    expect(error(big)).toMatchObject({ code: 'file_too_large', param: 'file' });
    expect(error(big)['message']).toContain(String(MAX_FILE));

    expect(error(await upload(''))['message']).toMatch(/holds no requests/);
    expect(error(await upload(new Uint8Array([0xff, 0xfe, 0x0a])))['message']).toMatch(/not UTF-8/);
    const purpose = await upload(good(1), 'fine-tune');
    expect(purpose.statusCode).toBe(400);
    expect(error(purpose)).toMatchObject({ param: 'purpose', code: 'invalid_value' });
    expect(error(await upload(good(1), null))).toMatchObject({ param: 'purpose', code: 'missing_required_parameter' });
    const json = await app.inject({ method: 'POST', url: '/v1/files', payload: { purpose: 'batch' } });
    expect(json.statusCode).toBe(400);
    expect(error(json)['message']).toMatch(/multipart\/form-data/);
    expect((await get('/v1/files')).data).toEqual([]);
  });

  it('answers 404 for unknown files', async () => {
    for (const url of [
      '/v1/files/file-000000000000000000000000',
      '/v1/files/../../etc/passwd/content',
      '/v1/files/nope/content',
    ])
      expect((await app.inject({ method: 'GET', url })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: '/v1/files/nope' })).statusCode).toBe(404);
  });
});

describe('the price and the refusals of a batch', () => {
  it('shows the price before a job opens', async () => {
    const id = await fileOf(good(200));
    const q = await get(`/v1/webtensor/batches/quote?input_file_id=${id}&completion_window=24h`);
    expect(q).toMatchObject({
      object: 'webtensor.batch_quote',
      requests: 200,
      shards: 8,
      max_tokens: 4,
      price_per_request_rao: '1000000',
      deposit_rao: '200000000',
      balance_rao: String(10n ** 12n),
      spendable_rao: String(10n ** 12n),
      affordable: true,
      deadline_epochs: 64,
    });
    expect(jobs.opened).toEqual([]);
    const missing = await app.inject({ method: 'GET', url: '/v1/webtensor/batches/quote' });
    expect(error(missing)).toMatchObject({ param: 'input_file_id', code: 'missing_required_parameter' });
  });

  it('maps completion_window to the job deadline in whole epochs, at most 64', () => {
    expect(deadlineEpochsOf('24h', productionProfile(0))).toBe(20);
    expect(deadlineEpochsOf('24h', network)).toBe(64);
    expect(deadlineEpochsOf('1m', network)).toBe(3);
    expect(deadlineEpochsOf('10s', network)).toBe(1);
    expect(shardsFor(200, 4, 25, 32 * 1024 * 1024)).toBe(8);
    expect(shardsFor(3, 4, 25, 32 * 1024 * 1024)).toBe(1);
    expect(shardsFor(100_000, 128, 25, 32 * 1024 * 1024)).toBe(256);
    // Results of a shard must fit one blob: a small blob limit needs more shards.
    expect(shardsFor(100, 128, 100, 10 * 55_296)).toBe(10);
  });

  it('refuses a bad completion_window, endpoint, metadata or file, and unknown ids, opening nothing', async () => {
    const id = await fileOf(good(4));
    const base = { input_file_id: id, endpoint: '/v1/chat/completions', completion_window: '24h' };
    const cases: [Record<string, unknown>, number, Record<string, unknown>][] = [
      [{ completion_window: '1d' }, 400, { param: 'completion_window', code: 'invalid_value' }],
      [{ completion_window: '0h' }, 400, { param: 'completion_window' }],
      [{ completion_window: 24 }, 400, { param: 'completion_window' }],
      [{ completion_window: undefined }, 400, { param: 'completion_window', code: 'missing_required_parameter' }],
      [{ endpoint: '/v1/embeddings' }, 400, { param: 'endpoint' }],
      [
        { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, k) => [`k${k}`, 'v'])) },
        400,
        { param: 'metadata' },
      ],
      [{ input_file_id: 'file-000000000000000000000000' }, 404, { code: 'file_not_found' }],
    ];
    for (const [change, status, fields] of cases) {
      const r = await createBatch({ ...base, ...change });
      expect(r.statusCode, JSON.stringify(change)).toBe(status);
      expect(error(r)).toMatchObject(fields);
    }
    for (const url of ['/v1/batches/batch_nope', '/v1/batches/batch_nope/cancel']) {
      const r = await app.inject({ method: url.endsWith('cancel') ? 'POST' : 'GET', url });
      expect(r.statusCode).toBe(404);
      expect(error(r)).toMatchObject({ code: 'batch_not_found' });
    }
    expect(jobs.opened).toEqual([]);
  });

  it('refuses a deposit above what the wallet can spend, taking nothing', async () => {
    const id = await fileOf(good(10));
    wallet.spendable = 9_999_999n;
    const r = await createBatch({ input_file_id: id, endpoint: '/v1/completions', completion_window: '24h' });
    expect(r.statusCode).toBe(400);
    expect(error(r)).toMatchObject({ code: 'insufficient_balance' });
    expect(error(r)['message']).toMatch(/10000000 rao \(10 requests × 1000000 rao\).*9999999 rao/);
    expect(jobs.opened).toEqual([]);
    expect((await get('/v1/batches')).data).toEqual([]);
  });
});

describe('through the real JobClient', () => {
  function realClient(spendable: bigint) {
    const publish = vi.fn(async (kind: string, body: unknown, block?: number) => ({
      kind,
      body,
      block: block ?? 0,
      seq: 1,
      author: 'gw',
      sig: 's',
    }));
    const blobs = {
      maxBlobBytes: 32 * 1024 * 1024,
      has: async () => false,
      isServed: () => false,
      add: async () => 'h',
      serve: async () => {},
      unserve: () => {},
      delete: async () => {},
      fetch: async () => {},
      read: async () => new Uint8Array(),
    } as unknown as JobBlobs;
    const client = new JobClient({
      book: { publish: publish as never, self: 'gw' },
      network,
      snapshot: new Store<LedgerSnapshot | null>(null),
      admission: { spendable: () => spendable },
      currentBlock: () => 500,
      blobs,
    });
    return { client, publish };
  }

  it('signs the job.open of the compiled file: price, shards, max tokens and the deadline', async () => {
    const { client, publish } = realClient(10n ** 12n);
    service.stop();
    await app.close();
    await gateway(client);
    const batch = await batchOf(60, '1m');
    expect(publish).toHaveBeenCalledTimes(1);
    expect(publish.mock.calls[0]![0]).toBe('job.open');
    expect(publish.mock.calls[0]![1]).toMatchObject({
      netuid: 1,
      model: MODEL,
      requests: 60,
      shards: 3,
      price: '1000000',
      maxTokens: 4,
      deadline: 500 + 3 * 20,
    });
    expect(batch).toMatchObject({ status: 'validating', webtensor: { deposit_rao: '60000000', deadline_epochs: 3 } });
  });

  it('signs nothing when the job client refuses the deposit', async () => {
    const { client, publish } = realClient(1000n);
    service.stop();
    await app.close();
    await gateway(client);
    const id = await fileOf(good(5));
    const r = await createBatch({ input_file_id: id, endpoint: '/v1/completions', completion_window: '24h' });
    expect(r.statusCode).toBe(400);
    expect(error(r)).toMatchObject({ code: 'insufficient_balance' });
    expect(publish).not.toHaveBeenCalled();
  });
});

describe("a batch's life", () => {
  it('goes validating → in progress → completed, with every answer in its output file', async () => {
    const created = await batchOf(50);
    expect(created).toMatchObject({ object: 'batch', status: 'validating', endpoint: '/v1/chat/completions' });
    expect(jobs.opened[0]).toMatchObject({ netuid: 1, shards: 2, price: PRICE, deadlineEpochs: 64 });
    jobs.state!.phase = 'open';
    jobs.state!.shards[0]!.status = 'paid';
    const running = await get(`/v1/batches/${created.id}`);
    expect(running).toMatchObject({ status: 'in_progress', request_counts: { total: 50, completed: 25, failed: 0 } });
    expect(running['in_progress_at']).toEqual(expect.any(Number));

    jobs.close(() => 'paid');
    const done = await get(`/v1/batches/${created.id}`);
    expect(done).toMatchObject({
      status: 'completed',
      request_counts: { total: 50, completed: 50, failed: 0 },
      error_file_id: null,
      webtensor: {
        job: 'job-1',
        price_per_request_rao: '1000000',
        deposit_rao: '50000000',
        paid_rao: '50000000',
        refunded_rao: '0',
      },
    });
    expect(jobs.forgotten).toEqual(['job-1']);
    const output = (await app.inject({ method: 'GET', url: `/v1/files/${done['output_file_id']}/content` })).body;
    const lines = output
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    expect(lines.map((l) => l['custom_id'])).toEqual(Array.from({ length: 50 }, (_, k) => `r${k}`));
    expect(lines[0]).toMatchObject({
      id: expect.stringMatching(/^batch_req_/),
      error: null,
      response: {
        status_code: 200,
        request_id: 'job-1:0',
        body: {
          object: 'chat.completion',
          model: MODEL,
          choices: [{ message: { role: 'assistant', content: ' answer 0' }, finish_reason: 'length' }],
          usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 },
          webtensor: { miner: 'miner-a', request_id: 'job-1:0', job: 'job-1' },
        },
      },
    });
    expect(lines[1]!['response'].body).toMatchObject({ object: 'text_completion', choices: [{ text: ' answer 1' }] });
    expect(await get('/v1/files?purpose=batch_output')).toMatchObject({
      data: [{ id: done['output_file_id'], purpose: 'batch_output' }],
    });

    // Kept across a restart.
    service.stop();
    await app.close();
    await gateway();
    expect(await get(`/v1/batches/${created.id}`)).toMatchObject({
      status: 'completed',
      output_file_id: done['output_file_id'],
    });
    expect((await get('/v1/batches')).data).toHaveLength(1);
  });

  it('cancels a job not replayed yet as soon as it opens; its refunded requests fill the error file', async () => {
    const created = await batchOf(50);
    const r = await app.inject({ method: 'POST', url: `/v1/batches/${created.id}/cancel` });
    expect(r.json()).toMatchObject({ status: 'cancelling', cancelling_at: expect.any(Number) });
    expect(jobs.cancelled).toEqual([]);
    jobs.state!.phase = 'open';
    await service.step();
    await service.step();
    expect(jobs.cancelled).toEqual(['job-1']);
    const again = await app.inject({ method: 'POST', url: `/v1/batches/${created.id}/cancel` });
    expect(again.statusCode).toBe(400);

    jobs.close((k) => (k === 0 ? 'paid' : 'refunded'), true);
    const done = await get(`/v1/batches/${created.id}`);
    expect(done).toMatchObject({
      status: 'cancelled',
      request_counts: { total: 50, completed: 25, failed: 25 },
      webtensor: { paid_rao: '25000000', refunded_rao: '25000000' },
    });
    const errors = (await app.inject({ method: 'GET', url: `/v1/files/${done['error_file_id']}/content` })).body;
    const lines = errors
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    expect(lines).toHaveLength(25);
    expect(lines[0]).toMatchObject({ custom_id: 'r25', response: null, error: { code: 'batch_cancelled' } });
    const late = await app.inject({ method: 'POST', url: `/v1/batches/${created.id}/cancel` });
    expect(late.statusCode).toBe(400);
    expect(error(late)['message']).toMatch(/is cancelled/);
  });

  it('refuses to cancel a batch past its deadline; it expires and refunds what no miner did', async () => {
    const created = await batchOf(50, '1m');
    jobs.state!.phase = 'open';
    block = jobs.state!.deadline;
    const r = await app.inject({ method: 'POST', url: `/v1/batches/${created.id}/cancel` });
    expect(r.statusCode).toBe(400);
    expect(error(r)).toMatchObject({ code: 'batch_expired' });
    expect(error(r)['message']).toMatch(/past its completion window/);
    expect(jobs.cancelled).toEqual([]);
    jobs.close(() => 'refunded');
    const done = await get(`/v1/batches/${created.id}`);
    expect(done).toMatchObject({
      status: 'expired',
      output_file_id: null,
      expired_at: expect.any(Number),
      request_counts: { total: 50, completed: 0, failed: 50 },
      webtensor: { paid_rao: '0', refunded_rao: '50000000' },
    });
    const errors = (await app.inject({ method: 'GET', url: `/v1/files/${done['error_file_id']}/content` })).body;
    expect(
      errors
        .trim()
        .split('\n')
        .every((l) => (JSON.parse(l) as Line).error.code === 'batch_expired'),
    ).toBe(true);
  });

  it('refuses to cancel a batch whose job closed (it is finalizing)', async () => {
    service.stop();
    await app.close();
    await gateway(jobs, { grace: 60_000 });
    const created = await batchOf(4);
    jobs.close(() => 'paid');
    jobs.lines[0] = { custom_id: 'r0', error: { code: 'unavailable', message: 'miner gone' } };
    const r = await app.inject({ method: 'POST', url: `/v1/batches/${created.id}/cancel` });
    expect(r.statusCode).toBe(400);
    expect(error(r)['message']).toMatch(/is finalizing/);
    expect(jobs.cancelled).toEqual([]);
  });

  it('fails a batch whose job the ledger refused', async () => {
    const created = await batchOf(4);
    Object.assign(jobs.state!, { phase: 'refused', reason: 'job-limit: 4 open jobs' });
    expect(await get(`/v1/batches/${created.id}`)).toMatchObject({
      status: 'failed',
      failed_at: expect.any(Number),
      errors: { object: 'list', data: [{ code: 'job_refused', message: expect.stringContaining('job-limit') }] },
    });
  });

  it('retries paid results it cannot fetch, then reports them in the error file', async () => {
    service.stop();
    await app.close();
    await gateway(jobs, { grace: 60_000 });
    const created = await batchOf(4);
    jobs.close(() => 'paid');
    jobs.lines[1] = { custom_id: 'r1', error: { code: 'unavailable', message: 'miner gone' } };
    expect(await get(`/v1/batches/${created.id}`)).toMatchObject({ status: 'finalizing' });
    service.stop();
    await app.close();
    await gateway(jobs, { grace: 0 });
    const done = await get(`/v1/batches/${created.id}`);
    expect(done).toMatchObject({ status: 'completed', request_counts: { completed: 3, failed: 1 } });
    const errors = (await app.inject({ method: 'GET', url: `/v1/files/${done['error_file_id']}/content` })).body;
    expect(JSON.parse(errors)).toMatchObject({ custom_id: 'r1', error: { code: 'result_unavailable' } });
  });

  it('reads back what it kept checked: a batch or file that is not what it should be is skipped and named, the rest load', async () => {
    const kept = await batchOf(4);
    const fileId = (kept as unknown as { input_file_id: string }).input_file_id;
    service.stop();
    await app.close();
    const batches = join(dir, 'batches');
    const files = join(dir, 'files');
    const record = JSON.parse(readFileSync(join(batches, `${kept.id}.json`), 'utf8')) as Record<string, unknown>;
    // Written by a gateway before batches kept `cancel_sent`: read as not sent.
    delete record['cancel_sent'];
    writeFileSync(join(batches, `${kept.id}.json`), JSON.stringify(record));
    const other = 'batch_' + 'a'.repeat(24);
    writeFileSync(join(batches, `${other}.json`), JSON.stringify({ ...record, id: other, requests: 'four' }));
    const moved = 'batch_' + 'b'.repeat(24);
    writeFileSync(join(batches, `${moved}.json`), JSON.stringify(record));
    writeFileSync(join(batches, `${kept.id}.json.tmp-0123456789ab`), '{"half": ');
    const object = JSON.parse(readFileSync(join(files, `${fileId}.json`), 'utf8')) as { file: Record<string, unknown> };
    const shrunk = 'file-' + 'c'.repeat(24);
    writeFileSync(join(files, `${shrunk}.json`), JSON.stringify({ ...object, file: { ...object.file, id: shrunk } }));
    writeFileSync(join(files, `${shrunk}.data`), 'short');
    writeFileSync(join(files, `${shrunk}.job.jsonl`), '');

    await gateway();
    expect(service.skipped.sort()).toEqual([
      `${join(batches, `${other}.json`)} is not a batch (requests: Invalid input: expected number, received string); skipped`,
      `${join(batches, `${moved}.json`)} is not a batch (it names ${kept.id}); skipped`,
    ]);
    expect(service['init'].files.skipped).toEqual([
      expect.stringMatching(
        new RegExp(
          `^${join(files, shrunk)}\\.json is not a file object \\(its bytes, ${shrunk}\\.data, are 5 bytes, not \\d+\\); skipped$`,
        ),
      ),
    ]);
    expect(readdirSync(batches).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expect((await get('/v1/batches')).data).toEqual([expect.objectContaining({ id: kept.id, status: 'validating' })]);
    expect((await app.inject({ method: 'GET', url: `/v1/files/${shrunk}` })).statusCode).toBe(404);
    expect(await get(`/v1/files/${fileId}`)).toMatchObject({ id: fileId, purpose: 'batch' });
    // A batch read back cancels as any other.
    jobs.state!.phase = 'open';
    await app.inject({ method: 'POST', url: `/v1/batches/${kept.id}/cancel` });
    expect(jobs.cancelled).toEqual(['job-1']);
  });

  it('lists batches newest first, a page at a time', async () => {
    const ids: string[] = [];
    for (let k = 0; k < 3; k++) ids.push((await batchOf(2)).id);
    const all = (await get('/v1/batches')) as unknown as { data: { id: string }[]; has_more: boolean };
    expect(new Set(all.data.map((b) => b.id))).toEqual(new Set(ids));
    const first = (await get('/v1/batches?limit=2')) as unknown as {
      data: { id: string }[];
      has_more: boolean;
      last_id: string;
    };
    expect(first).toMatchObject({ has_more: true });
    const rest = (await get(`/v1/batches?limit=2&after=${first.last_id}`)) as unknown as {
      data: unknown[];
      has_more: boolean;
    };
    expect(rest).toMatchObject({ has_more: false });
    expect(rest.data).toHaveLength(1);
    expect((await app.inject({ method: 'GET', url: '/v1/batches?limit=0' })).statusCode).toBe(400);
  });
});
