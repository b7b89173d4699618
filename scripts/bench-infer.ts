/**
 * npm run bench:infer — stories260K, greedy, 32 new tokens:
 *  - model load (cold, then warm) and per-request latency / tokens per second in a Chromium worker and in Node
 *    running the same onnxruntime-web build (ratio reported, and whether the token ids are identical);
 *  - the same requests served remotely by another tab over WebRTC vs run locally (network overhead ratio).
 * Writes docs/benchmarks.md.
 */
import { chromium } from '@playwright/test';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { openTabs } from '../e2e/support/tabs.ts';
import { machine, startPreview, writeSection } from './bench-lib.ts';
import { chromiumLaunchOptions } from './chromium.ts';
import { NodeInferenceEngine } from '../core/nodejs/inference.ts';

const MODEL = 'karpathy/stories260K';
const TOKENS = 32;
const prompts = [
  'Once upon a time',
  'The little dog',
  'Lily wanted to',
  'One day, a bird',
  'Tom and Sue went',
  'The sun was',
  'She saw a big',
  'Mom said',
  'The cat ran',
  'A boy named Ben',
];
const PORT = 4176;
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

// ---- Node
// The headless miner's engine (core/nodejs/inference.ts): files checked against the catalogue, then loaded.
let t = performance.now();
const engine = new NodeInferenceEngine();
await engine.load(MODEL);
const nodeCold = performance.now() - t;
t = performance.now();
await new NodeInferenceEngine().load(MODEL);
const nodeWarm = performance.now() - t;
const nodeMs: number[] = [];
const nodeIds: number[][] = [];
await engine.generate({ prompt: prompts[0]!, maxNewTokens: TOKENS }); // warm-up
for (const p of prompts) {
  const s = performance.now();
  nodeIds.push((await engine.generate({ prompt: p, maxNewTokens: TOKENS })).tokenIds);
  nodeMs.push(performance.now() - s);
}
console.log(
  `node: cold ${nodeCold.toFixed(0)} ms, warm ${nodeWarm.toFixed(0)} ms, median ${median(nodeMs).toFixed(0)} ms`,
);

// ---- Chromium
const server = await startPreview(PORT);
const relay = new RelayProcess(9690, 9691);
let chrome: { cold: number; warm: number; ms: number[]; ids: number[][] };
let network: { local: number[]; remote: number[]; minerMs: number[] };
try {
  await relay.start();
  const browser = await chromium.launch(chromiumLaunchOptions);
  const [client, miner] = await openTabs(browser, 2, relay.healthUrl, server.url);
  const page = client!.page;
  await Promise.all([client!, miner!].map((x) => x.page.evaluate(() => window.webtensor.ready)));
  const cold = (await page.evaluate((m) => window.webtensor.inference.serve(m), MODEL)).ms;
  await page.reload(); // warm: same browser cache, fresh worker
  await page.evaluate(() => window.webtensor.ready);
  const warm = (await page.evaluate((m) => window.webtensor.inference.serve(m), MODEL)).ms;
  const local = await page.evaluate(
    async ([ps, n]) => {
      await window.webtensor.inference.generate(ps[0]!, n); // warm-up
      const out: { ms: number; ids: number[] }[] = [];
      for (const p of ps) {
        const s = performance.now();
        const g = await window.webtensor.inference.generate(p, n);
        out.push({ ms: performance.now() - s, ids: g.tokenIds });
      }
      return out;
    },
    [prompts, TOKENS] as const,
  );
  chrome = { cold, warm, ms: local.map((x) => x.ms), ids: local.map((x) => x.ids) };
  await miner!.page.evaluate((m) => window.webtensor.inference.serve(m), MODEL);
  const minerId = await miner!.page.evaluate(() => window.webtensor.peerId!);
  await page.waitForFunction((id) => window.webtensor.peers.some((p) => p.peerId === id && p.direct), minerId, {
    timeout: 90_000,
  });
  const remote = await page.evaluate(
    async ([peer, m, ps, n]) => {
      await window.webtensor.inference.remote(peer, m, ps[0]!, n); // warm-up
      const out: { ms: number; minerMs: number }[] = [];
      for (const p of ps) {
        const s = performance.now();
        const { result } = await window.webtensor.inference.remote(peer, m, p, n);
        out.push({ ms: performance.now() - s, minerMs: result.inferMs });
        await new Promise((r) => setTimeout(r, 50));
      }
      return out;
    },
    [minerId, MODEL, prompts, TOKENS] as const,
  );
  network = { local: chrome.ms, remote: remote.map((r) => r.ms), minerMs: remote.map((r) => r.minerMs) };
  await browser.close();
} finally {
  server.stop();
  await relay.stop();
}

const same = JSON.stringify(chrome.ids) === JSON.stringify(nodeIds);
const tps = (ms: number) => ((TOKENS * 1000) / ms).toFixed(0);
const overhead = median(network.remote) / median(network.local) - 1;
const markdown = `## Inference (\`npm run bench:infer\`)

Measured ${new Date().toISOString().slice(0, 10)} on ${machine()}.
\`${MODEL}\`, greedy, ${TOKENS} new tokens, ${prompts.length} prompts after one warm-up request; WASM backend, fp32,
one thread. Node runs the same onnxruntime-web build as the browser (not onnxruntime-node). Cold load includes
compiling ORT's 27 MB WASM; warm load is a second load (Node: same process; Chromium: page reloaded, browser cache
kept, new worker). Load in Chromium includes checking every file against the catalogue hashes.

| | cold load (ms) | warm load (ms) | request median (ms) | tokens/s |
|---|---|---|---|---|
| Chromium worker | ${chrome.cold.toFixed(0)} | ${chrome.warm.toFixed(0)} | ${median(chrome.ms).toFixed(0)} | ${tps(median(chrome.ms))} |
| Node, a headless miner's engine (same ORT build) | ${nodeCold.toFixed(0)} | ${nodeWarm.toFixed(0)} | ${median(nodeMs).toFixed(0)} | ${tps(median(nodeMs))} |

Chromium ÷ Node request time: ${(median(chrome.ms) / median(nodeMs)).toFixed(2)}. Token ids identical in Chromium and
Node for all ${prompts.length} prompts: **${same ? 'yes' : 'NO'}**.

Served remotely by another tab over direct WebRTC (signed request, streamed tokens, signed-request checks on the
miner, signed result checked by the client) vs run locally in the client tab: median
${median(network.remote).toFixed(0)} ms vs ${median(network.local).toFixed(0)} ms, overhead **${(overhead * 100).toFixed(0)} %**
(target under 10 %). Of the remote time, the miner reports ${median(network.minerMs).toFixed(0)} ms generating
(streaming each piece back as it goes).
`;
writeSection('infer', markdown);
console.log(`\n${markdown}`);
