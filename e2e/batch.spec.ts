/**
 * OpenAI's Batch API on the gateway, end to end on a test network: a relay, a headless validator (staked from the
 * faucet: it audits job shards once it holds a permit), three honest headless miners and one cheating miner
 * (`--fault random`: it makes its answers up), every miner with free balance from the faucet for its bonds, and the
 * gateway with a funded wallet. The official `openai` client uploads a 200-request JSONL (chat and legacy
 * completions mixed, short max_tokens), reads the price, creates the batch, polls it to `completed` and downloads
 * the output: 200 answers, each custom_id once. A shard the cheater claimed failed its audit (its bond destroyed),
 * and was done again by an honest miner; the gateway's balance dropped by exactly what the audited work was paid.
 * Then the gateway is stopped with a batch in progress and started again on its data directory: the finished batch
 * and its output are served as before, and the one in progress is followed to completion. Last, with the miners
 * stopped so no shard can be claimed, a batch cancelled at once and a batch whose window runs out each give the
 * whole deposit back.
 */
import { expect, test } from '@playwright/test';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { Processes } from './support/processes.ts';

const relay = new RelayProcess(9730, 9731, undefined, ['--network', 'test']);
const VALIDATOR_PORT = 9732;
const HONEST_PORTS = [9733, 9734, 9735];
const CHEATER_PORT = 9736;
const GATEWAY_PORT = 9737;
const MODEL = 'webtensor/tiny-llama';
const PRICE = 1_000_000n;
const REQUESTS = 200;
const root = mkdtempSync(join(tmpdir(), 'batch-e2e-'));
const processes = new Processes(root, () => relay.healthUrl);
const miners: ChildProcess[] = [];
let gateway: ChildProcess;
/** The 200-request batch once completed, and its output file's text. */
let first: { batch: OpenAI.Batches.Batch; output: string } | null = null;
const base = `http://127.0.0.1:${GATEWAY_PORT}/v1`;
const openai = new OpenAI({ baseURL: base, apiKey: 'unused-on-an-open-gateway', maxRetries: 0, timeout: 60_000 });

test.describe.configure({ mode: 'serial' });
test.setTimeout(240_000);

interface NodeStatus {
  peerId: string;
  uid: number | null;
  model: string | null;
}
const status = (port: number): Promise<NodeStatus | null> =>
  fetch(`http://127.0.0.1:${port}/status`)
    .then((r) => r.json() as Promise<NodeStatus>)
    .catch(() => null);

/** The gateway's wallet: its free balance, from the last replay. */
const gatewayBalance = async (): Promise<bigint | null> =>
  fetch(`${base}/webtensor/status`)
    .then((r) => r.json() as Promise<{ wallet?: { balance_rao: string } | null }>)
    .then((s) => (s.wallet ? BigInt(s.wallet.balance_rao) : null))
    .catch(() => null);

interface WalletView {
  balance: string;
  history: { kind: string; body: { job?: string; shard?: number }; status: string }[];
}
const walletOf = (port: number): Promise<WalletView> =>
  fetch(`http://127.0.0.1:${port}/wallet`).then((r) => r.json() as Promise<WalletView>);

/** What the gateway adds to OpenAI's batch object. */
interface Extension {
  job: string;
  price_per_request_rao: string;
  deposit_rao: string;
  paid_rao?: string;
  refunded_rao?: string;
  forfeited_rao?: string;
  shards: { shard: number; first: number; end: number; status: string; miner: string | null }[];
}
const extensionOf = (b: OpenAI.Batches.Batch) => (b as unknown as { webtensor: Extension }).webtensor;

/** A line of a batch's output file, as far as the test reads it. */
interface OutputLine {
  custom_id: string;
  error: null;
  response: { status_code: number; body: { object: string; usage: { completion_tokens: number } } };
}

const DONE = ['completed', 'expired', 'cancelled', 'failed'];
/** Poll a batch until it is done; its last state. */
async function settled(id: string, timeout: number): Promise<OpenAI.Batches.Batch> {
  let last: OpenAI.Batches.Batch | null = null;
  await expect
    .poll(
      async () => {
        last = await openai.batches.retrieve(id);
        return DONE.includes(last.status);
      },
      { timeout, intervals: [2000] },
    )
    .toBe(true);
  return last!;
}

test.beforeAll(async () => {
  await relay.start();
  processes.node('validator', VALIDATOR_PORT, '--role', 'validator', '--faucet-stake', '1000000000000');
  for (const [k, port] of HONEST_PORTS.entries())
    miners.push(processes.node(`honest-${k}`, port, '--role', 'miner', '--model', MODEL, '--faucet', '10000000000'));
  // Enough for a few bonds (25-request shards: 50,000,000 rao each) and no more.
  miners.push(
    processes.node(
      'cheater',
      CHEATER_PORT,
      '--role',
      'miner',
      '--model',
      MODEL,
      '--fault',
      'random',
      '--faucet',
      '200000000',
    ),
  );
  gateway = startGateway(['--faucet', '100000000000']);
});

/** The gateway on its data directory (the same on a restart). */
const startGateway = (extra: string[] = []) =>
  processes.start('gateway', [
    'gateway/main.ts',
    ...['--port', String(GATEWAY_PORT), '--relay', relay.healthUrl, '--data', join(root, 'gateway')],
    ...['--batch-price', String(PRICE), '--audit-rate', '0', ...extra],
  ]);

test.afterAll(async () => {
  await processes.stopAll();
  await relay.stop();
});

// Playwright requires an object pattern for the fixtures, even when none are used.
// eslint-disable-next-line no-empty-pattern
test.afterEach(async ({}, info) => {
  if (info.status !== info.expectedStatus) processes.printLogs(4000);
});

/** 200 requests, chat and legacy completions taking turns, 2 to 4 new tokens each. */
function batchFile(n: number, tag: string): string {
  const prompts = ['Once upon a time', 'The little dog', 'In a small town', 'She opened the door', 'One day'];
  return Array.from({ length: n }, (_, k) => {
    const custom_id = `${tag}-${String(k).padStart(3, '0')}`;
    const max_tokens = 2 + (k % 3);
    const prompt = `${prompts[k % prompts.length]} (${k})`;
    return JSON.stringify(
      k % 2 === 0
        ? {
            custom_id,
            method: 'POST',
            url: '/v1/chat/completions',
            body: { model: MODEL, messages: [{ role: 'user', content: prompt }], max_tokens },
          }
        : { custom_id, method: 'POST', url: '/v1/completions', body: { model: MODEL, prompt, max_tokens } },
    );
  }).join('\n');
}

test('the openai client runs a 200-request batch: every answer, the cheater caught, exactly the audited work paid', async () => {
  const t0 = Date.now();
  // Every miner registered and serving; the gateway's wallet funded.
  await expect
    .poll(
      async () =>
        (await Promise.all([...HONEST_PORTS, CHEATER_PORT].map(status))).every((s) => s?.uid != null && s.model),
      { timeout: 150_000, intervals: [1000] },
    )
    .toBe(true);
  await expect.poll(gatewayBalance, { timeout: 30_000 }).toBeGreaterThanOrEqual(100_000_000_000n);
  const ready = Date.now();

  const file = await openai.files.create({
    file: await toFile(Buffer.from(batchFile(REQUESTS, 'req')), 'requests.jsonl'),
    purpose: 'batch',
  });
  expect(file).toMatchObject({ object: 'file', purpose: 'batch', status: 'processed' });

  // The price, before anything opens.
  const quote = (await (await fetch(`${base}/webtensor/batches/quote?input_file_id=${file.id}`)).json()) as Record<
    string,
    unknown
  >;
  expect(quote).toMatchObject({
    requests: REQUESTS,
    shards: 8,
    price_per_request_rao: String(PRICE),
    deposit_rao: String(PRICE * BigInt(REQUESTS)),
    affordable: true,
  });
  const before = (await gatewayBalance())!;

  const created = await openai.batches.create({
    input_file_id: file.id,
    endpoint: '/v1/chat/completions',
    completion_window: '24h',
    metadata: { run: 'e2e' },
  });
  expect(created).toMatchObject({ object: 'batch', metadata: { run: 'e2e' } });
  // validating until the job.open is replayed (often at once), then in progress.
  expect(['validating', 'in_progress']).toContain(created.status);
  expect(created.request_counts).toEqual({ total: REQUESTS, completed: 0, failed: 0 });

  const done = await settled(created.id, 180_000);
  const finished = Date.now();
  const ext = extensionOf(done);
  expect(done.status).toBe('completed');
  expect(done.request_counts).toEqual({ total: REQUESTS, completed: REQUESTS, failed: 0 });
  expect(done.error_file_id).toBeNull();

  // Every answer, each custom_id once, made as the live endpoints make theirs.
  const output = await (await openai.files.content(done.output_file_id!)).text();
  first = { batch: done, output };
  const lines = output
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as OutputLine);
  expect(lines).toHaveLength(REQUESTS);
  expect(new Set(lines.map((l) => l.custom_id)).size).toBe(REQUESTS);
  for (const line of lines) {
    const k = Number(line.custom_id.slice(4));
    expect(line.response.status_code).toBe(200);
    expect(line.error).toBeNull();
    expect(line.response.body.object).toBe(k % 2 === 0 ? 'chat.completion' : 'text_completion');
    expect(line.response.body.usage.completion_tokens).toBeLessThanOrEqual(2 + (k % 3));
  }

  // Paid exactly the audited work: every shard paid, nothing refunded, and the wallet down by that much.
  const shards = ext.shards;
  expect(shards.every((s) => s.status === 'paid')).toBe(true);
  expect(BigInt(ext.paid_rao!)).toBe(PRICE * BigInt(REQUESTS));
  expect(ext.refunded_rao).toBe('0');
  await expect.poll(gatewayBalance, { timeout: 10_000 }).toBe(before - BigInt(ext.paid_rao!));

  // The cheater: every result it published in this job was made up and failed its audit, its bond destroyed, and
  // the shard was done again by an honest miner. (A claim without a result lost a race for its shard, refused, or
  // lapsed, its bond destroyed too: the wallet's history marks a refusal only while its epoch is not final.)
  const cheater = (await status(CHEATER_PORT))!.peerId;
  const honest = (await Promise.all(HONEST_PORTS.map(status))).map((s) => s!.peerId);
  const mine = (await walletOf(CHEATER_PORT)).history.filter((r) => r.body.job === ext.job && r.status !== 'refused');
  const claims = mine.filter((r) => r.kind === 'job.claim').map((r) => r.body.shard!);
  const results = mine.filter((r) => r.kind === 'job.result').map((r) => r.body.shard!);
  const bonds = (list: number[]) =>
    list.reduce((sum, k) => sum + 2n * PRICE * BigInt(shards[k]!.end - shards[k]!.first), 0n);
  const forfeited = BigInt(ext.forfeited_rao!);
  expect(shards.every((s) => honest.includes(s.miner!))).toBe(true);
  expect(forfeited).toBeGreaterThanOrEqual(bonds(results));
  expect(forfeited).toBeLessThanOrEqual(bonds(claims));
  if (results.length > 0) expect(forfeited).toBeGreaterThan(0n);
  console.log(
    JSON.stringify({
      batch: {
        answers: lines.length,
        deposit: ext.deposit_rao,
        paid: ext.paid_rao,
        refunded: ext.refunded_rao,
        forfeited: ext.forfeited_rao,
        cheaterClaims: claims,
        cheaterResults: results,
        shardsByMiner: Object.fromEntries(
          [...honest, cheater].map((m) => [m.slice(-6), shards.filter((s) => s.miner === m).length]),
        ),
        readyMs: ready - t0,
        batchMs: finished - ready,
      },
    }),
  );
});

test('the gateway stopped with a batch in progress and started again on its data: the finished batch as before, the other one followed to completion', async () => {
  expect(first).not.toBeNull();
  const t0 = Date.now();
  const file = await openai.files.create({
    file: await toFile(Buffer.from(batchFile(20, 'again')), 'again.jsonl'),
    purpose: 'batch',
  });
  const created = await openai.batches.create({
    input_file_id: file.id,
    endpoint: '/v1/chat/completions',
    completion_window: '24h',
  });
  // In progress on the network: a miner holds a shard. (Stopped sooner, the gateway's job.open may not have
  // reached its peers before its epoch became final without it: the batch then fails, nothing taken.)
  let atStop: OpenAI.Batches.Batch | null = null;
  await expect
    .poll(
      async () => {
        atStop = await openai.batches.retrieve(created.id);
        return extensionOf(atStop).shards.some((s) => s.status !== 'open');
      },
      { timeout: 20_000, intervals: [250] },
    )
    .toBe(true);
  gateway.kill('SIGTERM');
  expect(atStop!.status).toBe('in_progress');
  await once(gateway, 'exit');
  const stopped = Date.now();
  gateway = startGateway();
  // Eventually (it replays its ledger before it answers; a loaded machine is slower, not wrong).
  await expect.poll(gatewayBalance, { timeout: 120_000, intervals: [500] }).not.toBeNull();
  const restarted = Date.now();

  // What was done before the stop, as it was.
  const before = await openai.batches.retrieve(first!.batch.id);
  expect(before).toMatchObject({ status: 'completed', output_file_id: first!.batch.output_file_id });
  expect(await (await openai.files.content(first!.batch.output_file_id!)).text()).toBe(first!.output);
  expect((await openai.files.retrieve(file.id)).bytes).toBe(Buffer.byteLength(batchFile(20, 'again')));
  const listed = (await openai.batches.list()).data.map((b) => b.id);
  expect(listed).toEqual(expect.arrayContaining([first!.batch.id, created.id]));

  // The batch in progress at the stop, followed to completion.
  const done = await settled(created.id, 60_000);
  expect(done).toMatchObject({ status: 'completed', request_counts: { total: 20, completed: 20, failed: 0 } });
  const output = (await (await openai.files.content(done.output_file_id!)).text()).trim().split('\n');
  expect(output.map((l) => (JSON.parse(l) as OutputLine).custom_id).sort()).toEqual(
    Array.from({ length: 20 }, (_, k) => `again-${String(k).padStart(3, '0')}`),
  );
  console.log(
    JSON.stringify({
      restart: { stopMs: stopped - t0, startMs: restarted - stopped, doneMs: Date.now() - restarted },
    }),
  );
});

test('with no miner left, a batch cancelled at once and one whose window runs out give the whole deposit back', async () => {
  for (const miner of miners) miner.kill('SIGTERM');
  const t0 = Date.now();
  const before = (await gatewayBalance())!;
  const upload = async (tag: string) =>
    openai.files.create({ file: await toFile(Buffer.from(batchFile(30, tag)), `${tag}.jsonl`), purpose: 'batch' });
  const [a, b] = await Promise.all([upload('cancel'), upload('expire')]);
  const cancelled = await openai.batches.create({
    input_file_id: a.id,
    endpoint: '/v1/completions',
    completion_window: '24h',
  });
  // The shortest window: one epoch (20 s on the test network).
  const expiring = await openai.batches.create({
    input_file_id: b.id,
    endpoint: '/v1/completions',
    completion_window: '20s' as '24h',
  });
  expect(extensionOf(expiring)).toMatchObject({ deposit_rao: String(30n * PRICE) });
  // Cancelled at once: the job is not replayed yet, and the gateway cancels it as soon as it is.
  expect((await openai.batches.cancel(cancelled.id)).status).toBe('cancelling');
  await expect(openai.batches.cancel('batch_000000000000000000000000')).rejects.toMatchObject({ status: 404 });

  const [c, e] = await Promise.all([settled(cancelled.id, 60_000), settled(expiring.id, 90_000)]);
  expect(c.status).toBe('cancelled');
  expect(e.status).toBe('expired');
  for (const [batch, code] of [
    [c, 'batch_cancelled'],
    [e, 'batch_expired'],
  ] as const) {
    expect(batch.request_counts).toEqual({ total: 30, completed: 0, failed: 30 });
    expect(batch.output_file_id).toBeNull();
    expect(extensionOf(batch)).toMatchObject({ paid_rao: '0', refunded_rao: String(30n * PRICE) });
    const errors = (await (await openai.files.content(batch.error_file_id!)).text()).trim().split('\n');
    expect(errors).toHaveLength(30);
    expect(errors.every((l) => (JSON.parse(l) as { error: { code: string } }).error.code === code)).toBe(true);
  }
  // Both deposits back, to the rao.
  await expect.poll(gatewayBalance, { timeout: 10_000 }).toBe(before);
  console.log(JSON.stringify({ cancelAndExpiry: { ms: Date.now() - t0 } }));
});
