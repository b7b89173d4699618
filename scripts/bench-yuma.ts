/**
 * npm run bench:yuma — one Yuma epoch, exact fixed point vs a float64 port of the same steps, in Node and in a
 * Chromium Web Worker, for n = 64, 256, 1024 and 4096 uids (a quarter validators), dense and 10 %-sparse weights.
 * Prints a table and writes it to docs/benchmarks.md. Ratios are measured in the same run on the same inputs.
 */
import { chromium } from '@playwright/test';
import { runEpoch } from '../shared/yuma/epoch.ts';
import { runEpochFloat64 } from '../shared/yuma/float64.ts';
import { syntheticEpoch, type SyntheticSpec } from '../shared/yuma/synthetic.ts';
import { machine, startPreview, writeSection } from './bench-lib.ts';
import { chromiumLaunchOptions } from './chromium.ts';

const sizes = (process.env['BENCH_SIZES'] ?? '64,256,1024,4096').split(',').map(Number);
const repeatsFor = (n: number) => (n <= 64 ? 21 : n <= 256 ? 7 : n <= 1024 ? 3 : 1);

function medianMs(repeats: number, run: () => void): number {
  const times: number[] = [];
  for (let k = 0; k < repeats; k++) {
    const start = performance.now();
    run();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1]!;
}

interface Row {
  spec: SyntheticSpec;
  node: { exactMs: number; floatMs: number };
  worker: { exactMs: number; floatMs: number };
}

const server = await startPreview(4174);
const rows: Row[] = [];
try {
  const browser = await chromium.launch(chromiumLaunchOptions);
  const page = await browser.newPage();
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => window.webtensor !== undefined);
  for (const n of sizes) {
    for (const density of ['dense', 'sparse'] as const) {
      const spec: SyntheticSpec = { n, density };
      const repeats = repeatsFor(n);
      const { params, inputs } = syntheticEpoch(spec);
      const node = {
        exactMs: medianMs(repeats, () => runEpoch(params, inputs)),
        floatMs: medianMs(Math.max(5, repeats), () => runEpochFloat64(params, inputs)),
      };
      const worker = await page.evaluate(([s, r]) => window.webtensor.yuma.benchEpoch(s, r), [spec, repeats] as const);
      rows.push({ spec, node, worker });
      console.log(
        `n=${n} ${density}: node exact ${node.exactMs.toFixed(1)} ms, float ${node.floatMs.toFixed(2)} ms; ` +
          `worker exact ${worker.exactMs.toFixed(1)} ms, float ${worker.floatMs.toFixed(2)} ms`,
      );
    }
  }
  await browser.close();
} finally {
  server.stop();
}

const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
const table = rows
  .map(
    ({ spec, node, worker }) =>
      `| ${spec.n} | ${spec.density} | ${fmt(node.exactMs)} | ${fmt(node.floatMs)} | ${(node.exactMs / node.floatMs).toFixed(1)}× | ` +
      `${fmt(worker.exactMs)} | ${fmt(worker.floatMs)} | ${(worker.exactMs / worker.floatMs).toFixed(1)}× |`,
  )
  .join('\n');
const at = (n: number, d: string) => rows.find((r) => r.spec.n === n && r.spec.density === d)?.worker.exactMs;
const w256 = at(256, 'dense');
const w4096 = at(4096, 'dense');
const verdict = [
  w256 !== undefined
    ? `n = 256 dense in a worker: ${fmt(w256)} ms (target 50 ms: ${w256 < 50 ? 'met' : 'missed'}).`
    : '',
  w4096 !== undefined
    ? `n = 4096 dense in a worker: ${fmt(w4096)} ms (target 5 s: ${w4096 < 5000 ? 'met' : 'missed'}).`
    : '',
]
  .filter(Boolean)
  .join(' ');

const markdown = `## Yuma epoch (\`npm run bench:yuma\`)

Measured ${new Date().toISOString().slice(0, 10)} on ${machine()}.
One epoch of the second tempo of a synthetic subnet (seeded; a quarter of the uids are validators with permits and
stake, the rest miners; Yuma 1 with β = 1, so bonds EMA and column normalisation run in full). Median ms of
${sizes.map((n) => `${repeatsFor(n)} run${repeatsFor(n) > 1 ? 's' : ''} at n = ${n}`).join(', ')}; the float64 port
runs the same steps on the same inputs in the same process (arrays of [col, value] rows, no fixed-point emulation);
"×" is exact ÷ float64.

| n | weights | Node exact (ms) | Node float64 (ms) | × | worker exact (ms) | worker float64 (ms) | × |
|---|---|---|---|---|---|---|---|
${table}

${verdict}
`;
writeSection('yuma', markdown);
console.log(`\n${markdown}`);
