/**
 * npm run bench:batch [-- --requests N] [--shard-size N]: OpenAI's Batch API on the gateway against the same
 * requests sent live, on one real local test network (1 s blocks, 20-block epochs): a relay, 4 headless miners
 * serving webtensor/tiny-llama (WASM), a headless validator (staked from the faucet, so it audits shards) and the
 * gateway with a funded wallet, all child processes as in e2e/batch.spec.ts. N chat completions (default 64; 32
 * new tokens, greedy or seeded sampling) go
 *
 *  - as one batch (files.create + batches.create with the official `openai` client, polled until completed, the
 *    output downloaded), timed from batches.create to the output file being downloaded;
 *  - live through /v1/chat/completions, 4 at a time and then 1 at a time, timed by the wall clock.
 *
 * It reports requests/s, tokens and the client's cost per 1,000 generated tokens of each path, and where the
 * batch's time went (from the ledger's job records and the miners' signed generation times). Writes the
 * "bench:batch" section of docs/benchmarks.md.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import OpenAI, { toFile } from 'openai';
import { Processes } from '../e2e/support/processes.ts';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { machine, writeSection } from './bench-lib.ts';

const MODEL = 'webtensor/tiny-llama';
const TOKENS = 32;
/** Rao per batch request: the gateway's default, passed explicitly so the report states what it used. */
const PRICE = 1_000_000n;
const RAO_PER_TAO = 1_000_000_000;
const LIVE_CONCURRENCY = 4;
// Ports 9620-9629 belong to this bench (nothing else uses them).
const RELAY_PORTS = [9620, 9621] as const;
const VALIDATOR_PORT = 9622;
const MINER_PORTS = [9623, 9624, 9625, 9626];
const GATEWAY_PORT = 9627;

const { values: flags } = parseArgs({
  options: { requests: { type: 'string', default: '64' }, 'shard-size': { type: 'string' } },
});
const positive = (flag: string, text: string) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a whole number from 1, not ${text}`);
  return n;
};
const REQUESTS = positive('requests', flags.requests);
/** One shard per miner by default: each miner holds one claim at a time, so all four can work at once. */
const SHARD_SIZE = positive('shard-size', flags['shard-size'] ?? String(Math.ceil(REQUESTS / MINER_PORTS.length)));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number) => (ms / 1000).toFixed(1);

// ---- the requests: as the e2e draws them, chat only, every fourth sampled with a seed (repeatable)

type Body = OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;
const PROMPTS = ['Once upon a time', 'The little dog', 'In a small town', 'She opened the door', 'One day'];

function requestBodies(n: number): Body[] {
  return Array.from({ length: n }, (_, k) => {
    const messages = [{ role: 'user' as const, content: `${PROMPTS[k % PROMPTS.length]} (${k})` }];
    const sampling = k % 4 === 3 ? { temperature: 0.8, seed: k } : { temperature: 0 };
    return { model: MODEL, messages, max_tokens: TOKENS, ...sampling };
  });
}

const batchFile = (bodies: Body[]) =>
  bodies
    .map((body, k) => JSON.stringify({ custom_id: `req-${k}`, method: 'POST', url: '/v1/chat/completions', body }))
    .join('\n');

// ---- the network

const root = mkdtempSync(join(tmpdir(), 'bench-batch-'));
// The relay's key goes under root too, so that nothing of the run is left behind.
const relay = new RelayProcess(...RELAY_PORTS, join(root, 'relay-key.pb'), ['--network', 'test']);
const processes = new Processes(root, () => relay.healthUrl);
const children: ChildProcess[] = [];
const minerName = (k: number) => `miner-${k}`;
const gatewayUrl = `http://127.0.0.1:${GATEWAY_PORT}/v1`;
const openai = new OpenAI({
  baseURL: gatewayUrl,
  apiKey: 'unused-on-an-open-gateway',
  maxRetries: 0,
  timeout: 120_000,
});

function startNetwork(): void {
  // A validator needs stake for a permit, and only a permitted validator audits shards.
  children.push(processes.node('validator', VALIDATOR_PORT, '--role', 'validator', '--faucet-stake', '1000000000000'));
  // Miners bond the shards they claim (twice the shard's payment) from free balance: 10 τ each.
  for (const [k, port] of MINER_PORTS.entries())
    children.push(processes.node(minerName(k), port, '--role', 'miner', '--model', MODEL, '--faucet', '10000000000'));
  // No rate limit worth the name: the live runs and the polling would pass 600 a minute at larger N.
  children.push(
    processes.start('gateway', [
      'gateway/main.ts',
      ...['--port', String(GATEWAY_PORT), '--relay', relay.healthUrl, '--data', join(root, 'gateway')],
      ...['--faucet', '100000000000', '--batch-price', String(PRICE), '--batch-shard-size', String(SHARD_SIZE)],
      ...['--rate-limit', '1000000'],
    ]),
  );
}

interface NodeStatus {
  peerId: string;
  uid: number | null;
  model: string | null;
  validator: { committedEpoch: number | null } | null;
}
const getJson = <T>(url: string): Promise<T | null> =>
  fetch(url)
    .then((r) => (r.ok ? (r.json() as Promise<T>) : null))
    .catch(() => null);
const statusOf = (port: number) => getJson<NodeStatus>(`http://127.0.0.1:${port}/status`);

/** The gateway's free balance (rao), from its last replay. */
async function gatewayBalance(): Promise<bigint | null> {
  const s = await getJson<{ wallet?: { balance_rao: string } | null }>(`${gatewayUrl}/webtensor/status`);
  return s?.wallet ? BigInt(s.wallet.balance_rao) : null;
}

/** Poll `check` every second until it is truthy; print every process's output and throw after `ms`. */
async function waitUntil<T>(what: string, ms: number, check: () => Promise<T | null | undefined | false>) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(1000)) {
    const value = await check();
    if (value) return value;
  }
  processes.printLogs(4000);
  throw new Error(`${what}: not within ${ms / 1000} s`);
}

/** Until the network is in steady state, so that neither path pays for its start: returns the miners' peer ids. */
async function waitForNetwork(): Promise<string[]> {
  const miners = await waitUntil('4 miners registered and serving', 240_000, async () => {
    const s = await Promise.all(MINER_PORTS.map(statusOf));
    return s.every((x) => x?.uid != null && x.model) && s.map((x) => x!.peerId);
  });
  // A validator commits weights only with a permit: from then on it also audits shards.
  await waitUntil('the validator holds a permit (has committed weights)', 240_000, async () => {
    const v = await statusOf(VALIDATOR_PORT);
    return v?.validator?.committedEpoch != null;
  });
  await waitUntil('the gateway lists the model', 90_000, async () =>
    (await openai.models.list().catch(() => ({ data: [] }))).data.some((m) => m.id === MODEL),
  );
  await waitUntil('the gateway wallet funded', 60_000, async () => ((await gatewayBalance()) ?? 0n) > 0n);
  return miners;
}

// ---- the live path

interface LiveRun {
  ms: number;
  tokens: number;
  texts: string[];
  failed: number;
}

/** Every body through /v1/chat/completions, `concurrency` at a time (each worker takes the next one). */
async function runLive(bodies: Body[], concurrency: number): Promise<LiveRun> {
  const texts: string[] = new Array<string>(bodies.length).fill('');
  let next = 0;
  let tokens = 0;
  let failed = 0;
  const worker = async () => {
    for (let k = next++; k < bodies.length; k = next++) {
      try {
        const reply = await openai.chat.completions.create(bodies[k]!);
        texts[k] = reply.choices[0]?.message.content ?? '';
        tokens += reply.usage?.completion_tokens ?? 0;
      } catch (err) {
        failed++;
        console.log(`live request ${k}: ${(err as Error).message}`);
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ms: performance.now() - start, tokens, texts, failed };
}

// ---- the batch path

/** What the gateway adds to OpenAI's batch object (gateway/batch-object.ts). */
interface Extension {
  job: string;
  shard_count: number;
  deposit_rao: string;
  paid_rao: string;
  refunded_rao: string;
  forfeited_rao: string;
  shards: { shard: number; first: number; end: number; status: string; miner: string | null }[];
}
const extensionOf = (b: OpenAI.Batches.Batch) => (b as unknown as { webtensor: Extension }).webtensor;

interface OutputLine {
  custom_id: string;
  response: { status_code: number; body: OpenAI.Chat.ChatCompletion } | null;
}

interface BatchRun {
  uploadMs: number;
  /** Date.now() just before batches.create: ledger blocks are placed against it. */
  createdAt: number;
  /** batches.create to the output file downloaded. */
  ms: number;
  /** When polling first saw each status, and `shard paid` (ms from batches.create). */
  seen: Record<string, number>;
  ext: Extension;
  lines: OutputLine[];
  tokens: number;
  /** Each request's answer, in request order. */
  texts: string[];
  /** How far the gateway wallet's free balance fell. */
  spent: bigint;
}

const DONE = ['completed', 'expired', 'cancelled', 'failed'];

/** Poll the batch twice a second until it is done (a retrieve itself waits up to 2 s while the output is made). */
async function follow(
  id: string,
  start: number,
): Promise<{ batch: OpenAI.Batches.Batch; seen: Record<string, number> }> {
  const seen: Record<string, number> = {};
  for (;;) {
    const batch = await openai.batches.retrieve(id);
    const at = performance.now() - start;
    seen[batch.status] ??= at;
    if (extensionOf(batch).shards.some((s) => s.status === 'paid')) seen['shard paid'] ??= at;
    if (DONE.includes(batch.status)) return { batch, seen };
    if (at > 20 * 60_000) throw new Error(`batch ${id} still ${batch.status} after 20 minutes`);
    await sleep(500);
  }
}

/** The gateway wallet's fall from `before`, once its replay shows `paid` spent (or what it shows after 15 s). */
async function spentSince(before: bigint, paid: bigint): Promise<bigint> {
  let balance = before;
  for (const end = Date.now() + 15_000; Date.now() < end && balance > before - paid; await sleep(500))
    balance = (await gatewayBalance()) ?? balance;
  return before - balance;
}

async function runBatch(bodies: Body[]): Promise<BatchRun> {
  const before = (await gatewayBalance())!;
  const uploadStart = performance.now();
  const file = await openai.files.create({
    file: await toFile(Buffer.from(batchFile(bodies)), 'bench.jsonl'),
    purpose: 'batch',
  });
  const uploadMs = performance.now() - uploadStart;

  const createdAt = Date.now();
  const start = performance.now();
  const created = await openai.batches.create({
    input_file_id: file.id,
    endpoint: '/v1/chat/completions',
    completion_window: '24h',
  });
  const { batch, seen } = await follow(created.id, start);
  if (batch.status !== 'completed' || !batch.output_file_id)
    throw new Error(`batch ${batch.id} ended ${batch.status}: ${JSON.stringify(batch.errors)}`);
  const output = await (await openai.files.content(batch.output_file_id)).text();
  const ms = performance.now() - start;

  const lines = output
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as OutputLine);
  const texts = new Array<string>(bodies.length).fill('');
  for (const l of lines) texts[Number(l.custom_id.slice(4))] = l.response?.body.choices[0]?.message.content ?? '';
  const ext = extensionOf(batch);
  return {
    uploadMs,
    createdAt,
    ms,
    seen,
    ext,
    lines,
    tokens: lines.reduce((n, l) => n + (l.response?.body.usage?.completion_tokens ?? 0), 0),
    texts,
    spent: await spentSince(before, BigInt(ext.paid_rao)),
  };
}

// ---- the batch's job on the ledger: claims, results and audits, with their blocks

interface WalletRecord {
  kind: string;
  block: number;
  body: { job?: string; shard?: number; resultsHash?: string; pass?: boolean };
  status: 'pending' | 'final' | 'refused';
  reason: { code: string } | null;
}

/** This job's records in a node's own chain (its wallet history), oldest first. */
async function jobRecords(port: number, job: string): Promise<WalletRecord[]> {
  const w = await getJson<{ history: WalletRecord[] }>(`http://127.0.0.1:${port}/wallet`);
  return (w?.history ?? [])
    .filter((r) => r.kind.startsWith('job.') && r.body.job === job)
    .sort((a, b) => a.block - b.block);
}

interface ShardTimes {
  shard: number;
  requests: number;
  /** Index of the miner that was paid. */
  miner: number;
  /** ms from batches.create to the middle of the block of the paid miner's claim, its result, and the audit. */
  claimMs: number;
  resultMs: number;
  auditMs: number;
  /** The miner's own generation time, summed over the shard's lines (signed `inferMs`; queue waits apart). */
  inferMs: number | null;
  queueMs: number | null;
}

interface Ledger {
  shards: ShardTimes[];
  claims: number;
  /**
   * Claims shown refused, by the replay's reason (`shard-taken`: another miner's claim came first). A wallet shows
   * a refusal only while its epoch is not final, so claims beyond the shards count the races lost too.
   */
  claimsRefused: Record<string, number>;
  results: number;
  auditsPassed: number;
  auditsFailed: number;
}

interface ResultLine {
  result: { inferMs: number; queueMs: number };
}

/** Σ inferMs and Σ queueMs of a results file, read from the miner's blob folder (null if gone already). */
function generationTimes(miner: number, hash: string): { inferMs: number; queueMs: number } | null {
  try {
    const lines = readFileSync(join(root, minerName(miner), 'blobs', hash), 'utf8')
      .trim()
      .split('\n');
    const results = lines.map((l) => (JSON.parse(l) as ResultLine).result);
    return {
      inferMs: results.reduce((a, r) => a + r.inferMs, 0),
      queueMs: results.reduce((a, r) => a + r.queueMs, 0),
    };
  } catch {
    return null;
  }
}

function found<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`not in the nodes' wallet histories: ${what}`);
  return value;
}

const countBy = (keys: string[]) => {
  const out: Record<string, number> = {};
  for (const k of keys) out[k] = (out[k] ?? 0) + 1;
  return out;
};

async function ledgerTimes(run: BatchRun, minerIds: string[]): Promise<Ledger> {
  const network = (await getJson<{ genesisMs: number; blockMs: number }>(relay.networkUrl))!;
  // A record's block is when it was signed, to the block: take its middle (±0.5 s).
  const at = (block: number) => network.genesisMs + (block + 0.5) * network.blockMs - run.createdAt;
  const byMiner = await Promise.all(MINER_PORTS.map((port) => jobRecords(port, run.ext.job)));
  const audits = (await jobRecords(VALIDATOR_PORT, run.ext.job)).filter((r) => r.kind === 'job.audit');
  const mine = (m: number, kind: string, shard: number) =>
    found(
      byMiner[m]!.filter((r) => r.kind === kind && r.body.shard === shard && r.status !== 'refused').at(-1),
      `miner ${m}'s ${kind} of shard ${shard}`,
    );
  const shards = run.ext.shards.map((s): ShardTimes => {
    const miner = minerIds.indexOf(s.miner!);
    const result = mine(miner, 'job.result', s.shard);
    const audit = found(
      audits.filter((r) => r.body.shard === s.shard && r.body.pass).at(-1),
      `the audit that paid shard ${s.shard}`,
    );
    const times = generationTimes(miner, result.body.resultsHash!);
    return {
      shard: s.shard,
      requests: s.end - s.first,
      miner,
      claimMs: at(mine(miner, 'job.claim', s.shard).block),
      resultMs: at(result.block),
      auditMs: at(audit.block),
      inferMs: times?.inferMs ?? null,
      queueMs: times?.queueMs ?? null,
    };
  });
  const all = byMiner.flat();
  const claims = all.filter((r) => r.kind === 'job.claim');
  return {
    shards,
    claims: claims.length,
    claimsRefused: countBy(claims.filter((r) => r.status === 'refused').map((r) => r.reason?.code ?? 'unknown')),
    results: all.filter((r) => r.kind === 'job.result' && r.status !== 'refused').length,
    auditsPassed: audits.filter((r) => r.body.pass).length,
    auditsFailed: audits.filter((r) => !r.body.pass).length,
  };
}

// ---- report

const rate = (n: number, ms: number) => (n * 1000) / ms;
const int = (x: bigint | number) => x.toLocaleString('en-US', { maximumFractionDigits: 0 });
const tao = (rao: number) => `${(rao / RAO_PER_TAO).toPrecision(3)} τ`;

function costCells(paid: bigint, tokens: number): string {
  if (paid === 0n) return '0 rao | 0 rao';
  const per1k = (Number(paid) * 1000) / tokens;
  return `${int(paid)} rao (${tao(Number(paid))}) | ${int(per1k)} rao (${tao(per1k)})`;
}

function mainTable(batch: BatchRun, live4: LiveRun, live1: LiveRun): string {
  const paid = BigInt(batch.ext.paid_rao);
  const row = (path: string, ms: number, tokens: number, cost: string) =>
    `| ${path} | ${REQUESTS} | ${seconds(ms)} | ${rate(REQUESTS, ms).toFixed(2)} | ${tokens} | ${rate(tokens, ms).toFixed(0)} | ${cost} |`;
  const ratio = (live: LiveRun) => `**${(rate(REQUESTS, batch.ms) / rate(REQUESTS, live.ms)).toFixed(2)}**`;
  return [
    '| path | requests | wall (s) | requests/s | completion tokens | tokens/s | client paid | client cost per 1,000 completion tokens |',
    '|---|---|---|---|---|---|---|---|',
    row(
      'Batch API (`files.create` + `batches.create`, polled, output downloaded)',
      batch.ms,
      batch.tokens,
      costCells(paid, batch.tokens),
    ),
    row(
      `live \`/v1/chat/completions\`, ${LIVE_CONCURRENCY} at a time`,
      live4.ms,
      live4.tokens,
      costCells(0n, live4.tokens),
    ),
    row('live `/v1/chat/completions`, 1 at a time', live1.ms, live1.tokens, costCells(0n, live1.tokens)),
    `| **batch ÷ live, requests/s** | | | ${ratio(live4)} (÷ ${LIVE_CONCURRENCY} at a time), ${ratio(live1)} (÷ 1 at a time) | | | | |`,
  ].join('\n');
}

/** The batch's wall time along its last-paid shard: what it waited for, and what it computed. */
function timeline(batch: BatchRun, ledger: Ledger): string {
  const last = ledger.shards.reduce((a, s) => (s.auditMs > a.auditMs ? s : a));
  const firstClaim = Math.min(...ledger.shards.map((s) => s.claimMs));
  const firstAudit = Math.min(...ledger.shards.map((s) => s.auditMs));
  const gen = last.inferMs ?? NaN;
  const polled = (status: string) => seconds(batch.seen[status] ?? NaN);
  const rows: [string, string][] = [
    ['`job.open` replayed: the batch `in_progress` (polled)', polled('in_progress')],
    ['the first claim (its block)', seconds(firstClaim)],
    [
      'the first shard paid: its audit (block) / seen paid by polling',
      `${seconds(firstAudit)} / ${polled('shard paid')}`,
    ],
    ['the last shard paid (its audit, block)', seconds(last.auditMs)],
    ['`completed` (polled)', polled('completed')],
    ['the output file downloaded', seconds(batch.ms)],
  ];
  const steps: [string, number][] = [
    [
      "until the last shard was claimed (`job.open` replayed, the miners' 2 s job loop and job file fetch, races lost, and idle miners declining a shard their last rate says they cannot finish in half the claim)",
      last.claimMs,
    ],
    ["its claim replayed and the miner's queue (claim → result, less generating)", last.resultMs - last.claimMs - gen],
    [`generating its ${last.requests} requests (Σ of the miner's signed \`inferMs\`)`, gen],
    [
      "waiting for and doing its audit (result → audit: the auditor's 2 s loop, fetching both files, stage 2 on 4 lines)",
      last.auditMs - last.resultMs,
    ],
    [
      'finalizing: the gateway sees the job closed, fetches and checks every results file, writes the output; download',
      batch.ms - last.auditMs,
    ],
  ];
  return [
    '| since `batches.create` | s |',
    '|---|---|',
    ...rows.map(([label, cell]) => `| ${label} | ${cell} |`),
    '',
    `Along the shard paid last (shard ${last.shard}, miner ${last.miner}):`,
    '',
    '| step | s | share of the batch |',
    '|---|---|---|',
    ...steps.map(([label, ms]) => `| ${label} | ${seconds(ms)} | ${((100 * ms) / batch.ms).toFixed(0)} % |`),
  ].join('\n');
}

function shardTable(ledger: Ledger): string {
  const f = (ms: number | null) => (ms === null ? '–' : seconds(ms));
  return [
    '| shard | requests | miner | claimed (s) | result (s) | paid: audit (s) | claim → result (s) | generating, Σ `inferMs` (s) | queued, Σ `queueMs` (s) | result → audit (s) |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...ledger.shards.map(
      (s) =>
        `| ${s.shard} | ${s.requests} | ${s.miner} | ${f(s.claimMs)} | ${f(s.resultMs)} | ${f(s.auditMs)} | ${f(s.resultMs - s.claimMs)} | ${f(s.inferMs)} | ${f(s.queueMs)} | ${f(s.auditMs - s.resultMs)} |`,
    ),
  ].join('\n');
}

/** Whether the batch answered everything, and as the live path did. */
function answers(batch: BatchRun, live4: LiveRun, live1: LiveRun): string {
  const ok = batch.lines.filter((l) => l.response?.status_code === 200).length;
  const same = (live: LiveRun) => batch.texts.filter((t, k) => t === live.texts[k]).length;
  const failed = live4.failed + live1.failed;
  return [
    `The batch's output: ${batch.lines.length} lines, ${ok} with status 200.`,
    `Its texts equal the live answers' for ${same(live4)} of ${REQUESTS} requests (${LIVE_CONCURRENCY} at a time)`,
    `and ${same(live1)} of ${REQUESTS} (1 at a time); greedy and seeded sampling should make them all equal.`,
    failed ? `Live requests that failed: ${failed}.` : 'No live request failed.',
  ].join(' ');
}

/** The job's records: shards, claims (and the races lost), results, audits. */
function ledgerCounts(ext: Extension, ledger: Ledger): string {
  const extra = ledger.claims - ext.shard_count;
  const refused = Object.entries(ledger.claimsRefused).map(([code, n]) => `${n} \`${code}\``);
  const races =
    extra > 0
      ? `${extra} more than the shards: idle miners take open shards each in its own hashed order, so two ` +
        `whose orders begin alike race, and a claim that loses is refused (still shown refused by the wallets: ${refused.length ? refused.join(', ') : 'none'})`
      : 'one per shard: no race lost';
  return [
    `On the ledger: ${ext.shard_count} shards; ${ledger.claims} claims (${races}),`,
    `${ledger.results} results, ${ledger.auditsPassed} audits passed and ${ledger.auditsFailed} failed;`,
    `${int(BigInt(ext.forfeited_rao))} rao of bonds forfeited.`,
  ].join(' ');
}

/** The one validator audits one shard at a time: how long results waited for it. */
function auditQueue(ledger: Ledger): string {
  const waits = ledger.shards.map((s) => s.auditMs - s.resultMs).sort((a, b) => a - b);
  return `The one validator audits one shard at a time, so results queue for it: result → audit took ${seconds(waits[0]!)} to ${seconds(waits.at(-1)!)} s.`;
}

function report(batch: BatchRun, ledger: Ledger, live4: LiveRun, live1: LiveRun): string {
  const { ext } = batch;
  const generating = ledger.shards.reduce((a, s) => a + (s.inferMs ?? 0), 0);
  return `## Batch API vs live requests (\`npm run bench:batch\`)

Measured ${new Date().toISOString().slice(0, 10)} on ${machine()}; \`nproc\` ${availableParallelism()}.
A real test network on this machine (1 s blocks, 20-block epochs), every part a child process as in
\`e2e/batch.spec.ts\`: the relay, 4 headless miners serving \`${MODEL}\` (WASM, 10 τ each from the faucet
for their bonds), 1 headless validator (1000 τ staked from the faucet: it holds a permit, so it audits shards) and
the gateway (100 τ from the faucet, \`--batch-price ${PRICE}\` rao per request, \`--batch-shard-size ${SHARD_SIZE}\`${
    SHARD_SIZE === Math.ceil(REQUESTS / MINER_PORTS.length)
      ? ': one shard per miner, as each holds one claim at a time'
      : ''
  }). Timing starts once every miner is registered and serving, the validator has committed weights
(it holds a permit) and the gateway lists the model. The same ${REQUESTS} chat completions on each path
(\`max_tokens: ${TOKENS}\`; three in four greedy, every fourth sampled at temperature 0.8 with a seed), through
the official \`openai\` client. Batch: uploaded with \`files.create\` (${seconds(batch.uploadMs)} s, not
counted), then timed from \`batches.create\` (\`completion_window: "24h"\`) through polling \`batches.retrieve\` twice
a second to the output file downloaded with \`files.content\`. Live: \`chat.completions.create\` (not streamed),
${LIVE_CONCURRENCY} requests in flight and then 1, timed by the wall clock; the live runs come after the batch.
One run of each: every process shares this machine's cores, so from one run to the next the times move by tens of
percent (run it under \`flock /tmp/browser.lock\` so that no browser test runs alongside).

${mainTable(batch, live4, live1)}

**What "cost" means.** Batch: what the job's deposit paid out to miners (\`paid_rao\` of the batch object's
\`webtensor\` member, the ledger's settled job: ${int(BigInt(ext.paid_rao))} of a ${int(BigInt(ext.deposit_rao))} rao
deposit, ${int(BigInt(ext.refunded_rao))} refunded; the gateway's wallet fell by ${int(batch.spent)} rao), ÷ the
completion tokens of the output file. The price is per request, so the cost per token rises when answers end early.
Live: the gateway charges nothing for \`/v1/chat/completions\`, so the client pays 0 rao; the miners who answer are
paid by the subnet's emission (validators score them through challenges and audit a share of live answers), not by
the client, and that emission is not attributed per request here.

${answers(batch, live4, live1)}

${ledgerCounts(ext, ledger)}

### Where the batch's time goes

The batch path has the ledger's latency built in: a claim, a result and an audit are each a signed record that
counts once a replay has it, and miners and the auditor look for work every 2 s. Times below are from
\`batches.create\`; ledger events are placed at the middle of the block of their record (1 s blocks, so ±0.5 s),
statuses when polling first saw them.

${timeline(batch, ledger)}

Per shard (miner: the index of the miner that was paid):

${shardTable(ledger)}

All shards together spent ${seconds(generating)} s generating (the miners' signed \`inferMs\`, summed), against
${seconds(batch.ms)} s of wall time with ${MINER_PORTS.length} miners working at once on a
${availableParallelism()}-core machine that also runs the relay, the validator and the gateway. The live path
spends only generating and the gateway's routing; the rest of the batch's time is waiting for blocks and loops
(claims, their replay, the audit) and assembling the output. ${auditQueue(ledger)} A batch's cost in time is
largely fixed per shard, not per request, so the ratio moves with N and the shard size (\`--requests\`,
\`--shard-size\`).
`;
}

// ---- main

let stopped: Promise<void> | null = null;
/** Stop every child (SIGKILL after 10 s) and the relay, and remove their data; once, however the run ends. */
const stopAll = () =>
  (stopped ??= (async () => {
    processes.stopAll();
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        if (!(await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]))) child.kill('SIGKILL');
      }),
    );
    await relay.stop();
    rmSync(root, { recursive: true, force: true });
  })());
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => void stopAll().finally(() => process.exit(130)));

let markdown: string;
try {
  const bodies = requestBodies(REQUESTS);
  await relay.start();
  startNetwork();
  const minerIds = await waitForNetwork();
  console.log(`network up: miners ${minerIds.join(', ')}`);
  // Warm the miners and the gateway's router on another prompt, so neither path pays for a cold start.
  await runLive(
    requestBodies(8).map((b) => ({ ...b, messages: [{ role: 'user', content: 'Warm up' }] })),
    4,
  );
  const batch = await runBatch(bodies);
  console.log(`batch: ${seconds(batch.ms)} s`);
  const ledger = await ledgerTimes(batch, minerIds);
  const live4 = await runLive(bodies, LIVE_CONCURRENCY);
  console.log(`live, ${LIVE_CONCURRENCY} at a time: ${seconds(live4.ms)} s`);
  const live1 = await runLive(bodies, 1);
  console.log(`live, 1 at a time: ${seconds(live1.ms)} s`);
  markdown = report(batch, ledger, live4, live1);
} finally {
  await stopAll();
}
writeSection('batch', markdown);
console.log(`\n${markdown}`);
