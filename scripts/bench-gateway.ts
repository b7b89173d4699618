/**
 * npm run bench:gateway — the OpenAI-compatible gateway vs a tab asking a miner directly, on one real local
 * network: a relay, two headless miners serving webtensor/tiny-llama and the gateway (child processes, as in
 * e2e/gateway.spec.ts), and a Chromium tab on the same relay. The same prompts (the gateway's plain chat
 * template), greedy, 64 new tokens: time to first text and tokens/s with 1 client (sequential) and 8 concurrent
 * clients, the two paths taking turns. Writes the "Gateway vs a tab asking a miner directly" section of
 * docs/benchmarks.md.
 */
import { chromium, type Page } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { openTabs } from '../e2e/support/tabs.ts';
import { plainTemplate } from '../gateway/chat-template.ts';
import { machine, startPreview, writeSection } from './bench-lib.ts';
import { chromiumLaunchOptions } from './chromium.ts';

const MODEL = 'webtensor/tiny-llama';
const TOKENS = 64;
const WARMUP = 4;
const CONCURRENT = 8;
const ROUNDS = 3;
const MINER_PORTS = [9642, 9643];
const GATEWAY_PORT = 9645;
const PREVIEW_PORT = 9646;
const questions = [
  'Tell me a story about a cat.',
  'What is the weather like today?',
  'Write a poem about the sea.',
  'How do birds fly?',
  'Describe a big red house.',
  'Why is the sky blue?',
  'Tell me about your day.',
  'What do dogs like to eat?',
  'Say something kind.',
  'Where do rivers go?',
];
/** What the gateway sends a miner for each question (tiny-llama has no chat template: the plain one). */
const prompts = questions.map((q) => plainTemplate([{ role: 'user', content: q }]));

/** One request, from either side: ttftMs null when no text arrived. */
interface Sample {
  ttftMs: number | null;
  ms: number;
  tokens: number;
  text: string;
  /** The miner's own generation time, from its signed answer. */
  minerMs: number;
}
interface Run {
  one: Sample[];
  /** Per round of CONCURRENT requests: its samples and its wall time. */
  rounds: { samples: Sample[]; ms: number }[];
}

const median = (v: number[]) => (v.length ? [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]! : NaN);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- child processes

const children: ChildProcess[] = [];
/** What else to close at the end, latest first: the browser, the preview server. */
const closers: (() => Promise<void>)[] = [];
const logs = new Map<ChildProcess, string>();

function startNode(args: string[]): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  logs.set(child, '');
  const add = (d: Buffer) => logs.set(child, (logs.get(child)! + d.toString()).slice(-20_000));
  child.stdout!.on('data', add);
  child.stderr!.on('data', add);
  return child;
}

/** SIGTERM, and SIGKILL whatever has not exited 10 s later. */
async function stopChildren(): Promise<void> {
  await Promise.all(
    children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      if ((await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)])) === false)
        child.kill('SIGKILL');
    }),
  );
}

interface MinerStatus {
  peerId: string;
  uid: number | null;
}
const minerStatus = (port: number): Promise<MinerStatus | null> =>
  fetch(`http://127.0.0.1:${port}/status`)
    .then((r) => r.json() as Promise<MinerStatus>)
    .catch(() => null);

/** Poll `check` every 500 ms until it is truthy; throw with the children's logs after `ms`. */
async function waitUntil<T>(what: string, ms: number, check: () => Promise<T | null | undefined | false>) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(500)) {
    const value = await check();
    if (value) return value;
  }
  for (const [child, log] of logs) console.log(`--- ${child.spawnargs.slice(2, 4).join(' ')}\n${log.slice(-3000)}`);
  throw new Error(`${what}: not within ${ms / 1000} s`);
}

/** Start both miners and the gateway; resolve with the miners' peer ids once both are registered and listed. */
async function startNetwork(relay: RelayProcess, openai: OpenAI): Promise<string[]> {
  const root = mkdtempSync(join(tmpdir(), 'bench-gateway-'));
  for (const [k, port] of MINER_PORTS.entries())
    startNode([
      'core/nodejs/cli.ts',
      ...['--role', 'miner', '--model', MODEL, '--relay', relay.healthUrl],
      ...['--data', join(root, `miner-${k}`), '--status-port', String(port)],
    ]);
  // An open gateway (no key); its default rate limit (600 a minute) is far above what this sends.
  startNode([
    'gateway/main.ts',
    ...['--port', String(GATEWAY_PORT), '--relay', relay.healthUrl, '--data', join(root, 'gateway')],
  ]);
  const statuses = await waitUntil('both miners registered', 180_000, async () => {
    const s = await Promise.all(MINER_PORTS.map(minerStatus));
    return s.every((x) => x?.uid != null) && s;
  });
  await waitUntil('the gateway lists the model', 90_000, async () =>
    (await openai.models.list().catch(() => ({ data: [] }))).data.some((m) => m.id === MODEL),
  );
  return (statuses as MinerStatus[]).map((s) => s.peerId);
}

// ---- the two ways of asking, and what both runs measure

/** Ask the questions with these indices, all at once. */
type Asker = (indices: number[]) => Promise<Sample[]>;

const range = (n: number, from = 0) => Array.from({ length: n }, (_, k) => (from + k) % questions.length);

/**
 * 1 client per path, the paths taking turns question by question: the miners still speed up over their first
 * requests (and their ledgers work alongside), so turns keep that out of the ratio.
 */
async function measureOne(paths: Asker[], count: number): Promise<Sample[][]> {
  const out = paths.map((): Sample[] => []);
  for (const k of range(count)) for (const [p, ask] of paths.entries()) out[p]!.push(...(await ask([k])));
  return out;
}

/** CONCURRENT clients per path: ROUNDS rounds of CONCURRENT requests at once, the paths taking turns. */
async function measureRounds(paths: Asker[]): Promise<Run['rounds'][]> {
  const out = paths.map((): Run['rounds'] => []);
  for (let r = 0; r < ROUNDS; r++)
    for (const [p, ask] of paths.entries()) {
      const start = performance.now();
      const samples = await ask(range(CONCURRENT, r));
      out[p]!.push({ samples, ms: performance.now() - start });
    }
  return out;
}

// ---- through the gateway

async function gatewayAsk(openai: OpenAI, question: string): Promise<Sample> {
  const start = performance.now();
  const stream = await openai.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: question }],
    temperature: 0,
    max_tokens: TOKENS,
    stream: true,
    stream_options: { include_usage: true },
  });
  let ttftMs: number | null = null;
  let text = '';
  let tokens = 0;
  let id = '';
  for await (const chunk of stream) {
    const piece = chunk.choices[0]?.delta.content ?? '';
    if (piece && ttftMs === null) ttftMs = performance.now() - start;
    text += piece;
    id = chunk.id;
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  const ms = performance.now() - start;
  return { ttftMs, ms, tokens, text, minerMs: await minerInferMs(openai, id) };
}

/** The miner's own generation time, from the signed answer the gateway keeps (asked after the timing). */
async function minerInferMs(openai: OpenAI, id: string): Promise<number> {
  const res = await fetch(`${openai.baseURL}/webtensor/results/${id}`);
  return ((await res.json()) as { result: { inferMs: number } }).result.inferMs;
}

const gatewayAsker =
  (openai: OpenAI): Asker =>
  (indices) =>
    Promise.all(indices.map((k) => gatewayAsk(openai, questions[k]!)));

// ---- a tab asking a miner directly

/** Installed in the tab as plain text (no transpiler helpers): one ask, timed by the automation API. */
const tabHelper = `(() => {
  window.benchAsk = async (peer, model, prompt, n) => {
    const start = performance.now();
    const { result, firstPieceMs } = await window.webtensor.inference.remote(peer, model, prompt, n);
    const ms = performance.now() - start;
    return {
      ttftMs: firstPieceMs,
      ms,
      tokens: result.tokenIds.length,
      text: result.text,
      minerMs: result.inferMs,
    };
  };
  // The documented way, as a cross-check: cancel once the first piece arrives.
  window.benchFirstPiece = async (peer, model, prompt, n) => {
    const start = performance.now();
    const error = await window.webtensor.inference
      .remote(peer, model, prompt, n, { cancelAfterPieces: 1 })
      .then(() => null, (e) => e);
    return error && error.code === 'cancelled' ? performance.now() - start : null;
  };
})();`;
type BenchWindow = {
  benchAsk(peer: string, model: string, prompt: string, n: number): Promise<Sample>;
  benchFirstPiece(peer: string, model: string, prompt: string, n: number): Promise<number | null>;
};

/** Each question's prompt asked of the next miner in turn (a round of 8: 4 each), all at once. */
function tabAsker(page: Page, miners: string[]): Asker {
  let next = 0;
  return (indices) => {
    const asks = indices.map((k) => [miners[next++ % miners.length]!, prompts[k]!] as const);
    return page.evaluate(
      ([list, m, n]) =>
        Promise.all(list.map(([peer, p]) => (window as unknown as BenchWindow).benchAsk(peer, m, p, n))),
      [asks, MODEL, TOKENS] as const,
    );
  };
}

/** Time to the first piece by cancelling there, one prompt at a time; a pause lets the miner drop the rest. */
async function tabFirstPieces(page: Page, miners: string[]): Promise<number[]> {
  const out: number[] = [];
  for (const [k, p] of prompts.entries()) {
    const ms = await page.evaluate(
      ([peer, m, prompt, n]) => (window as unknown as BenchWindow).benchFirstPiece(peer, m, prompt, n),
      [miners[k % miners.length]!, MODEL, p, TOKENS] as const,
    );
    if (ms !== null) out.push(ms);
    await sleep(500);
  }
  return out;
}

/** A client tab on the relay (production build), connected directly to both miners, helper installed. */
async function openTab(relay: RelayProcess, miners: string[]): Promise<Page> {
  const server = await startPreview(PREVIEW_PORT);
  closers.push(async () => server.stop());
  // Our own signal handlers stop everything (Playwright's would exit before the miners are stopped).
  const browser = await chromium.launch({ ...chromiumLaunchOptions, handleSIGINT: false, handleSIGTERM: false });
  closers.push(() => browser.close());
  const [tab] = await openTabs(browser, 1, relay.healthUrl, server.url);
  const page = tab!.page;
  page.on('pageerror', (e) => console.log(`tab error: ${e.message}`));
  await page.evaluate(() => window.webtensor.ready);
  await page.waitForFunction(
    (ids) => ids.every((id) => window.webtensor.peers.some((p) => p.peerId === id && p.direct)),
    miners,
    { timeout: 90_000 },
  );
  await page.evaluate(tabHelper);
  return page;
}

// ---- report

interface Row {
  ttft: number;
  tps: number;
  tokens: number;
  minerMs: number;
  /** Requests that gave no text (left out of the TTFT median). */
  noText: number;
  /** Several clients: all tokens of a round ÷ its wall time, median over rounds. */
  aggregate?: number;
}

function summarise(samples: Sample[], rounds?: Run['rounds']): Row {
  const withText = samples.filter((s) => s.ttftMs !== null);
  const row: Row = {
    ttft: median(withText.map((s) => s.ttftMs!)),
    tps: median(samples.map((s) => (s.tokens * 1000) / s.ms)),
    tokens: median(samples.map((s) => s.tokens)),
    minerMs: median(samples.map((s) => s.minerMs)),
    noText: samples.length - withText.length,
  };
  if (rounds) row.aggregate = median(rounds.map((r) => (r.samples.reduce((a, s) => a + s.tokens, 0) * 1000) / r.ms));
  return row;
}

const f0 = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? x.toFixed(0) : '');
const f2 = (x: number) => (Number.isFinite(x) ? `**${x.toFixed(2)}**` : '');

function tableRows(clients: number, gw: Row, tab: Row): string {
  const row = (path: string, r: Row) =>
    `| ${clients} | ${path} | ${f0(r.ttft)} | ${f0(r.tps)} | ${f0(r.aggregate)} | ${f0(r.tokens)} | ${f0(r.minerMs)} |`;
  const ratio = (pick: (r: Row) => number | undefined) => f2(pick(gw)! / pick(tab)!);
  const ratios = [ratio((r) => r.ttft), ratio((r) => r.tps), ratio((r) => r.aggregate)].join(' | ');
  return [
    row('gateway (openai SDK, streamed)', gw),
    row('tab → miner (`inference.remote`)', tab),
    `| ${clients} | **gateway ÷ tab** | ${ratios} | | |`,
  ].join('\n');
}

function report(gw: Run, tab: Run & { cancelTtft: number[] }): string {
  const all = (r: Run) => r.rounds.flatMap((x) => x.samples);
  const [g1, t1] = [summarise(gw.one), summarise(tab.one)];
  const [gN, tN] = [summarise(all(gw), gw.rounds), summarise(all(tab), tab.rounds)];
  const same = gw.one.filter((s, k) => s.text === tab.one[k]!.text).length;
  const noText = g1.noText + t1.noText + gN.noText + tN.noText;
  return `### Gateway vs a tab asking a miner directly

\`npm run bench:gateway\`. Measured ${new Date().toISOString().slice(0, 10)} on ${machine()}.
A relay, two headless miners (\`npm run node -- --role miner\`, WASM) serving \`${MODEL}\` and the gateway, all
child processes on this machine, and one Chromium tab (\`role=client\`) on the same relay, connected directly to
both miners. The same ${questions.length} questions, greedy, at most ${TOKENS} new tokens: the gateway gets chat
messages (\`temperature: 0\`, \`stream: true\`, \`stream_options.include_usage\`); the tab asks
\`inference.remote(miner, …)\` with the prompt the gateway makes of them (the plain chat template) and the same
params, alternating between the two miners (the gateway's router chooses for itself). 1 client: ${WARMUP} warm-up
requests, then ${questions.length}, one after another, the two paths taking turns request by request (the miners
still get faster over their first requests). ${CONCURRENT} clients: ${ROUNDS} rounds of ${CONCURRENT} requests at
once, the paths taking turns round by round; the tab sends its ${CONCURRENT} as concurrent \`inference.remote\`
calls from the one tab, ${CONCURRENT / 2} per miner (the gateway sends at most 4 to a miner at once, a miner's queue).
Medians over requests. Time to first token: request to the first non-empty content delta (gateway) or to the
first non-empty streamed piece (tab: \`firstPieceMs\` of \`inference.remote\`). Tokens/s per
request: completion tokens (usage; the tab: the signed result's token ids) ÷ request to last chunk (tab: to the
checked result). Aggregate: a round's tokens ÷ its wall time. Miner: the generation time the miner signs
(\`inferMs\`, its queue wait excluded).

| clients | path | time to first token (ms) | tokens/s per request | aggregate tokens/s | tokens per request | miner generating (ms) |
|---|---|---|---|---|---|---|
${tableRows(1, g1, t1)}
${tableRows(CONCURRENT, gN, tN)}

Both paths ask the same miners for the same work; the last column is the miners' own time, which moves with what
else runs on this machine's cores (miners, relay, gateway and Chromium all share them), and from one run of this
benchmark to the next the ratios move by tens of percent.

Cross-check of the tab's 1-client time to first token the documented way (\`cancelAfterPieces: 1\`, a separate
request per question, ${tab.cancelTtft.length} answered): median ${f0(median(tab.cancelTtft))} ms.
The gateway's streamed text equals the tab's for ${same} of ${questions.length} questions (greedy: it should for
all).${noText ? ` Requests that gave no text at all (left out of the time-to-first-token medians): ${noText}.` : ''}
`;
}

// ---- main

const relay = new RelayProcess(9640, 9641, undefined, ['--network', 'test']);
const openai = new OpenAI({
  baseURL: `http://127.0.0.1:${GATEWAY_PORT}/v1`,
  apiKey: 'unused-on-an-open-gateway',
  maxRetries: 0,
  timeout: 120_000,
});
let stopped: Promise<void> | null = null;
/** Close the browser, stop every child and the relay; once, whether the run ends, fails or is interrupted. */
const stopAll = () =>
  (stopped ??= (async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
    await stopChildren();
    await relay.stop();
  })());
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => void stopAll().finally(() => process.exit(130)));

let markdown: string;
try {
  await relay.start();
  const miners = await startNetwork(relay, openai);
  console.log(`network up: miners ${miners.join(', ')}`);
  const page = await openTab(relay, miners);
  const paths = [gatewayAsker(openai), tabAsker(page, miners)];
  await measureOne(paths, WARMUP);
  const [gatewayOne, tabOne] = await measureOne(paths, questions.length);
  console.log('1 client measured');
  const [gatewayRounds, tabRounds] = await measureRounds(paths);
  console.log(`${CONCURRENT} clients measured`);
  const cancelTtft = await tabFirstPieces(page, miners);
  markdown = report({ one: gatewayOne!, rounds: gatewayRounds! }, { one: tabOne!, rounds: tabRounds!, cancelTtft });
} finally {
  await stopAll();
}
writeSection('gateway', markdown);
console.log(`\n${markdown}`);
