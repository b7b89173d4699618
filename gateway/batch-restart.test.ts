/**
 * The Batch API across a restart of the gateway, with real services: the gateway's JobClient (keeping its jobs in a
 * job memory, as a node's platform gives it), a miner generating with webtensor/tiny-llama and a validator auditing
 * it, on a real ledger (core/testing/job-net.ts), behind the gateway's real Fastify app (inject), its batches and
 * files on disk. The gateway is stopped and made again on the same data directory, key, files and job memory: a
 * batch that finished before still answers with its output; one whose job closed but whose results could not be
 * fetched yet (the miner unreachable) finishes from what the job client kept, though the replay no longer reports the
 * job; one in progress is followed to completion; data on disk that is not what it should be is skipped and logged.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '../core/chunked-blob-store.ts';
import { NodeInferenceEngine } from '../core/nodejs/inference.ts';
import { MemoryJobMemoryStore } from '../core/services/job-memory.ts';
import { GENESIS_MS } from '../core/testing/fakes.ts';
import { jobAuditorOn, jobClientOn, jobMinerOn, JobNet } from '../core/testing/job-net.ts';
import type { StoredRecord } from '../shared/ledger/replay.ts';
import { actor, claim, make, registration, smallConfig, type Actor } from '../shared/ledger/testing.ts';
import { BatchService } from './batches.ts';
import type { ChatTemplate } from './chat-template.ts';
import { FileStore } from './files.ts';
import { MinerRouter } from './router.ts';
import { buildGateway } from './server.ts';

const config = smallConfig({ genesisMs: GENESIS_MS });
const subnet = config.subnets[0]!;
const MODEL = subnet.model;
const FUNDS = 1_000_000_000n;
const PRICE = 1000n;

let gw: Actor;
let worker: Actor;
let validator: Actor;
let base: StoredRecord[];
const minerEngine = new NodeInferenceEngine();
const validatorEngine = new NodeInferenceEngine();
let plain: ChatTemplate;

beforeAll(async () => {
  [gw, worker, validator] = (await Promise.all([actor(), actor(), actor()])) as [Actor, Actor, Actor];
  base = [
    await registration(config, worker, 1, 'miner'),
    await registration(config, validator, 2, 'validator'),
    await claim(config, validator, 6, 1_000_000_000_000n),
    ...(await Promise.all([gw, worker].map((a) => claim(config, a, 6, FUNDS)))),
    await make(config, validator, 'stake.add', 7, { hotkey: validator.id, amount: '1000000000000' }),
  ];
  await minerEngine.load(MODEL);
  await validatorEngine.load(MODEL);
  // After the engines: transformers.js (which the chat templates use) must find onnxruntime-web registered.
  plain = { kind: 'plain', render: (await import('./chat-template.ts')).plainTemplate };
}, 60_000);

const chatLine = (id: string) => ({
  custom_id: id,
  method: 'POST',
  url: '/v1/chat/completions',
  body: { model: MODEL, messages: [{ role: 'user', content: `Tell a story about ${id}` }], max_tokens: 4 },
});
const batchFile = (name: string) =>
  Array.from({ length: 4 }, (_, k) => JSON.stringify(chatLine(`${name}-${k}`))).join('\n') + '\n';

/** The gateway's node as a process would make it on its data directory: the same key, files and job memory. */
type ClientNode = Awaited<ReturnType<typeof jobClientOn>>;

interface Gateway {
  app: FastifyInstance;
  service: BatchService;
  client: ClientNode;
  warnings: string[];
  stop(): Promise<void>;
}

async function startGateway(net: JobNet, dir: string, kept: { memory: MemoryJobMemoryStore; files: MemoryBlobStore }) {
  const client = await jobClientOn(net, gw, { memory: kept.memory, blobStore: kept.files });
  const warnings: string[] = [];
  const log = {
    info: () => {},
    warn: (fields: { problem?: string; error?: string }, message: string) =>
      warnings.push(fields.problem ?? `${message}: ${fields.error}`),
  } as unknown as Logger;
  const files = new FileStore(join(dir, 'files'));
  await files.load();
  const service = new BatchService({
    dir: join(dir, 'batches'),
    files,
    jobs: () => client.jobs,
    wallet: () => ({
      balance: () => net.snapshot.get()!.balances[gw.id] ?? 0n,
      spendable: () => client.admission.spendable(gw.id),
    }),
    network: () => config,
    currentBlock: () => net.block,
    price: PRICE,
    requestsPerShard: 2,
    maxBlobBytes: client.blobs.maxBlobBytes,
    unavailableGraceMs: 3_600_000,
    stepMs: 3_600_000,
    log,
  });
  await service.start();
  const app = await buildGateway({
    network: () => config,
    router: new MinerRouter({ client: { candidates: () => [], infer: async () => Promise.reject(new Error('no')) } }),
    templates: async () => plain,
    apiKeys: [],
    corsOrigin: '*',
    ratePerMinute: 10_000,
    bodyLimit: 256 * 1024,
    deadlineMs: 1000,
    batch: { files, batches: service, maxFileBytes: 64 * 1024 },
  });
  const stop = async () => {
    service.stop();
    await app.close();
    client.jobs.stop();
  };
  return { app, service, client, warnings, stop } satisfies Gateway;
}

async function upload(app: FastifyInstance, content: string): Promise<string> {
  const form = new FormData();
  form.append('file', new Blob([content]), 'batch.jsonl');
  form.append('purpose', 'batch');
  const request = new Request('http://x/', { method: 'POST', body: form });
  const r = await app.inject({
    method: 'POST',
    url: '/v1/files',
    headers: { 'content-type': request.headers.get('content-type')! },
    payload: Buffer.from(await request.arrayBuffer()),
  });
  expect(r.statusCode).toBe(200);
  return (r.json() as { id: string }).id;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a batch object, read by path
type Batch = Record<string, any>;

async function createBatch(app: FastifyInstance, name: string): Promise<Batch> {
  const input_file_id = await upload(app, batchFile(name));
  const r = await app.inject({
    method: 'POST',
    url: '/v1/batches',
    payload: { input_file_id, endpoint: '/v1/chat/completions', completion_window: '24h' },
  });
  expect(r.statusCode).toBe(200);
  return r.json() as Batch;
}

const getBatch = async (app: FastifyInstance, id: string) =>
  (await app.inject({ method: 'GET', url: `/v1/batches/${id}` })).json() as Batch;
const content = async (app: FastifyInstance, fileId: string) =>
  (await app.inject({ method: 'GET', url: `/v1/files/${fileId}/content` })).body;
const customIds = (jsonl: string) =>
  jsonl
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { custom_id: string; error: unknown }).custom_id);

describe('the Batch API across a restart of the gateway', () => {
  it('still serves a finished batch, finishes one whose job closed from what its job client kept, and follows one in progress to completion', async () => {
    const net = await JobNet.create(config, base);
    const dir = mkdtempSync(join(tmpdir(), 'gateway-restart-'));
    const kept = { memory: new MemoryJobMemoryStore(), files: new MemoryBlobStore() };
    const miner = await jobMinerOn(net, worker, MODEL, minerEngine);
    const v = await jobAuditorOn(net, validator, subnet, validatorEngine);
    const first = await startGateway(net, dir, kept);
    /** Every shard of the open jobs claimed, generated and audited, one block at a time. */
    const work = async (steps: number) => {
      for (let k = 0; k < steps; k++) {
        await net.at(net.block + 1);
        await miner.jobs.step();
        await v.audits.step();
      }
    };

    // Batch A finishes before the restart.
    const a = await createBatch(first.app, 'a');
    expect(a).toMatchObject({ status: 'validating', webtensor: { shard_count: 2, deposit_rao: '4000' } });
    await work(6);
    const doneA = await getBatch(first.app, a['id']);
    expect(doneA).toMatchObject({ status: 'completed', request_counts: { total: 4, completed: 4, failed: 0 } });
    const outputA = await content(first.app, doneA['output_file_id']);
    expect(customIds(outputA)).toEqual(['a-0', 'a-1', 'a-2', 'a-3']);

    // Batch C's job closes, but its miner cannot be reached for the results: it is finalizing at the restart.
    const c = await createBatch(first.app, 'c');
    await work(6);
    const jobC: string = c['webtensor'].job;
    expect(first.client.jobs.status(jobC)).toMatchObject({ phase: 'closed', paid: 4000n });
    await expect.poll(() => kept.memory.values.get(jobC)).toContain('"phase":"closed"');
    net.down.add(worker.id);
    expect(await getBatch(first.app, c['id'])).toMatchObject({ status: 'finalizing' });

    // Batch B is in progress at the restart: one shard done, waiting for its audit.
    const b = await createBatch(first.app, 'b');
    await work(2);
    await net.replay();
    const runningB = await getBatch(first.app, b['id']);
    expect(runningB).toMatchObject({ status: 'in_progress', request_counts: { completed: 0 } });
    expect(runningB['webtensor'].shards.map((s: Batch) => s['status'])).toContain('result');

    // The gateway stops. Meanwhile: a batch written half, and a file object whose bytes are gone.
    const orphan = await upload(first.app, batchFile('orphan'));
    await first.stop();
    const torn = join(dir, 'batches', 'batch_000000000000000000000000.json');
    writeFileSync(torn, '{"id": "batch_0000');
    rmSync(join(dir, 'files', `${orphan}.data`));
    // The node's replay continues from a state after C's job closed: it no longer reports that settlement.
    net.reportSettledAfter = net.block;
    await net.replay();
    expect(net.snapshot.get()!.settledJobs!.some((s) => s.job === jobC)).toBe(false);

    const second = await startGateway(net, dir, kept);
    expect(second.warnings.sort()).toEqual([
      expect.stringMatching(
        new RegExp(`^${torn.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a batch \\(not JSON: .+\\); skipped$`),
      ),
      `${join(dir, 'files', `${orphan}.json`)} is not a file object (its bytes, ${orphan}.data, are missing); skipped`,
    ]);
    expect(readdirSync(join(dir, 'batches')).filter((n) => n.includes('.tmp-'))).toEqual([]);

    // A: as it was, with its output and input files.
    expect(await getBatch(second.app, a['id'])).toMatchObject({
      status: 'completed',
      output_file_id: doneA['output_file_id'],
    });
    expect(await content(second.app, doneA['output_file_id'])).toBe(outputA);
    expect(await content(second.app, a['input_file_id'])).toBe(batchFile('a'));
    const listed = (await second.app.inject({ method: 'GET', url: '/v1/batches' })).json() as { data: Batch[] };
    expect(listed.data.map((x) => x['id']).sort()).toEqual([a['id'], b['id'], c['id']].sort());

    // C: the job client knows the closed job from what it kept; with the miner back, the batch completes.
    expect(second.client.jobs.status(jobC)).toMatchObject({ phase: 'closed', paid: 4000n });
    expect(await getBatch(second.app, c['id'])).toMatchObject({ status: 'finalizing' });
    net.down.delete(worker.id);
    const doneC = await getBatch(second.app, c['id']);
    expect(doneC).toMatchObject({ status: 'completed', request_counts: { completed: 4, failed: 0 } });
    expect(customIds(await content(second.app, doneC['output_file_id']))).toEqual(['c-0', 'c-1', 'c-2', 'c-3']);

    // B: followed on to completion.
    expect(await getBatch(second.app, b['id'])).toMatchObject({ status: 'in_progress' });
    await work(6);
    await second.service.step();
    const doneB = await getBatch(second.app, b['id']);
    expect(doneB).toMatchObject({
      status: 'completed',
      request_counts: { total: 4, completed: 4, failed: 0 },
      webtensor: { paid_rao: '4000', refunded_rao: '0' },
    });
    const outputB = await content(second.app, doneB['output_file_id']);
    expect(customIds(outputB)).toEqual(['b-0', 'b-1', 'b-2', 'b-3']);
    // Every answer is the model's own, signed by the miner for its line of B's job.
    for (const [k, line] of outputB.trim().split('\n').entries()) {
      const body = (JSON.parse(line) as Batch)['response'].body;
      expect(body.webtensor).toEqual({
        miner: worker.id,
        request_id: `${b['webtensor'].job}:${k}`,
        job: b['webtensor'].job,
      });
    }
    await second.stop();
  });
});
