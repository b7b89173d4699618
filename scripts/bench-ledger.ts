/**
 * npm run bench:ledger — the ledger's costs, measured on real parts:
 *  - records validated per second (stateless checks: schema, signature, clock, proof of work) in Node;
 *  - storing 10k records in a tab (checks + IndexedDB), and how long a fresh tab takes to sync all 10k from it
 *    over WebRTC (/webtensor/sync/1);
 *  - replay time in the consensus worker for subnets of 64 and 256 UIDs (registrations, stakes, every validator's
 *    commit and reveal, two epochs closed) against the same replay in Node;
 *  - how long after an epoch closes (end block + grace) all of 4 tabs report its roots, and that they agree.
 * Writes docs/benchmarks.md.
 */
import { chromium, type Page } from '@playwright/test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTabs } from '../e2e/support/tabs.ts';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { parseNetworkConfig, type NetworkConfig } from '../shared/ledger/config.ts';
import { testProfile } from '../shared/ledger/profiles.ts';
import { checkRecord } from '../shared/ledger/records.ts';
import { MAX_PENDING_PER_AUTHOR, RECORDS_PER_AUTHOR_PER_BLOCK } from '../shared/ledger/admission.ts';
import { replay, type StoredRecord } from '../shared/ledger/replay.ts';
import { actor, claim, make, registration, votes, type Actor } from '../shared/ledger/testing.ts';
import { weightsCommitHash } from '../shared/ledger/state.ts';
import { machine, startPreview, writeSection } from './bench-lib.ts';
import { chromiumLaunchOptions } from './chromium.ts';
import { runMonth } from './bench-ledger-month.ts';

// `npm run bench:ledger -- --month-only`: only the 30-day history (bench-ledger-month.ts).
if (process.argv.includes('--month-only')) {
  await runMonth();
  process.exit(0);
}

const PORT = 4177;
const TEMPO = 100;
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

/** A network whose genesis is 350 blocks ago, so three 100-block epochs are closed. */
function benchConfig(): NetworkConfig {
  const base = testProfile(Date.now() - 350_000);
  return parseNetworkConfig({
    ...base,
    networkId: 'webtensor-bench',
    // Registration without a burn and without a per-block limit: the bench fills a subnet in a few blocks to
    // measure replay, not the price of getting in.
    subnets: [
      {
        ...base.subnets[0]!,
        tempo: TEMPO,
        maxUids: 256,
        maxValidators: 64,
        registrationDifficulty: 8,
        registration: { ...base.subnets[0]!.registration, minBurn: '0', maxPerBlock: 64, maxDifficulty: 8 },
      },
    ],
  });
}

/** A network whose one epoch lasts an hour: records of this hour stay open to sync (nothing is final yet). */
function syncConfig(): NetworkConfig {
  const base = testProfile(Date.now() - 10_000);
  return parseNetworkConfig({
    ...base,
    networkId: 'webtensor-bench-sync',
    subnets: [{ ...base.subnets[0]!, tempo: 3600 }],
  });
}

/**
 * n UIDs: a quarter validators (each claims test τ and stakes it on itself), the rest miners; every validator
 * commits weights over every miner in epoch 1, votes on epoch 1's checkpoint, and reveals in epoch 2.
 */
async function subnetRecords(config: NetworkConfig, n: number): Promise<StoredRecord[]> {
  const records: StoredRecord[] = [];
  const validators: Actor[] = [];
  const miners = n - Math.floor(n / 4);
  for (let k = 0; k < n; k++) {
    const a = await actor();
    const role = k < miners ? 'miner' : 'validator';
    records.push(await registration(config, a, 1 + (k % 50), role));
    if (role === 'validator') validators.push(a);
  }
  for (const [k, v] of validators.entries()) {
    const amount = String(1e12 + k * 1e9);
    records.push(await claim(config, v, 55, BigInt(amount)));
    records.push(await make(config, v, 'stake.add', 60, { hotkey: v.id, amount }));
  }
  const uids = Array.from({ length: miners }, (_, k) => k);
  const salt = '0123456789abcdef0123456789abcdef';
  const weightsOf = (k: number) => uids.map((u) => 1000 + ((u * 7919 + k * 104729) % 60000));
  for (const [k, v] of validators.entries())
    records.push(
      await make(config, v, 'weights.commit', TEMPO + 1, {
        netuid: 1,
        hash: weightsCommitHash({ netuid: 1, uids, values: weightsOf(k), salt }),
      }),
    );
  records.push(...(await votes(config, records, 1, validators, 2 * TEMPO + 5)));
  for (const [k, v] of validators.entries())
    records.push(
      await make(config, v, 'weights.reveal', 2 * TEMPO + TEMPO / 2 + 1, {
        netuid: 1,
        uids,
        values: weightsOf(k),
        salt,
      }),
    );
  return records;
}

/**
 * `count` transfers within the open epoch of `config`, as honest users make them: each author (funded by a
 * faucet claim) signs at most MAX_PENDING_PER_AUTHOR - 1 of them, at most RECORDS_PER_AUTHOR_PER_BLOCK per
 * block from `firstBlock` on, so that admission takes every one (one author's 10k transfers in 5 blocks would be
 * a flood, and is refused as one).
 */
async function transfers(config: NetworkConfig, count: number, firstBlock: number): Promise<StoredRecord[]> {
  const perAuthor = MAX_PENDING_PER_AUTHOR - 1;
  const to = await actor();
  const out: StoredRecord[] = [];
  for (let made = 0; made < count; made += perAuthor) {
    const from = await actor();
    const mine = Math.min(perAuthor, count - made);
    out.push(await claim(config, from, firstBlock, BigInt(mine)));
    // The claim takes one of the first block's places.
    for (let k = 0; k < mine; k++)
      out.push(
        await make(config, from, 'transfer', firstBlock + Math.floor((k + 1) / RECORDS_PER_AUTHOR_PER_BLOCK), {
          to: to.id,
          amount: '1',
        }),
      );
  }
  return out;
}

// ---- Node: validation throughput and replay
const config = benchConfig();
const sample = await transfers(config, 2000, 300);
let t = performance.now();
for (const r of sample) await checkRecord(r.record, config, { nowBlock: 350, minBlock: 0 });
const validatePerSecond = (sample.length * 1000) / (performance.now() - t);
console.log(`node: ${validatePerSecond.toFixed(0)} records/s validated`);

const subnets = new Map<number, StoredRecord[]>();
const nodeReplayMs = new Map<number, number>();
for (const n of [64, 256]) {
  const records = await subnetRecords(config, n);
  subnets.set(n, records);
  const runs: number[] = [];
  for (let k = 0; k < 3; k++) {
    t = performance.now();
    const r = replay(config, records, 3 * TEMPO);
    runs.push(performance.now() - t);
    if (r.epochs.length !== 3 || Object.keys(r.refused).length > 0 || r.lastFinal !== 1)
      throw new Error(`bench subnet ${n} did not replay cleanly: ${JSON.stringify(Object.values(r.refused)[0])}`);
  }
  nodeReplayMs.set(n, median(runs));
  console.log(`node: replay of ${n} UIDs (${records.length} records, 3 epochs) ${median(runs).toFixed(0)} ms`);
}
const sync = syncConfig();
const tenK = await transfers(sync, Number(process.env['BENCH_SYNC_RECORDS'] ?? 10_000), 5);

// ---- Chromium
const dir = mkdtempSync(join(tmpdir(), 'bench-ledger-'));
const networkFile = join(dir, 'network.json');
writeFileSync(networkFile, JSON.stringify(config));
const server = await startPreview(PORT);
const relay = new RelayProcess(9990, 9991, undefined, ['--network', networkFile]);
const browserReplayMs = new Map<number, number>();
let importMs: number;
let syncMs: number;
const agreeMs: number[] = [];
try {
  await relay.start();
  const browser = await chromium.launch(chromiumLaunchOptions);
  const importRecords = (page: Page, records: StoredRecord[]) =>
    page.evaluate((rs) => window.webtensor.ledger.debug.importRecords(rs), records.map((r) => r.record) as unknown[]);

  for (const n of [64, 256]) {
    const [tab] = await openTabs(browser, 1, relay.healthUrl, server.url);
    await tab!.page.evaluate(() => window.webtensor.ready);
    const imported = await importRecords(tab!.page, subnets.get(n)!);
    if (imported.accepted !== subnets.get(n)!.length)
      throw new Error(`tab refused records: ${JSON.stringify(imported)}`);
    const runs: number[] = [];
    for (let k = 0; k < 3; k++) runs.push((await tab!.page.evaluate(() => window.webtensor.ledger.debug.replay())).ms);
    browserReplayMs.set(n, median(runs));
    console.log(`chromium worker: replay of ${n} UIDs ${median(runs).toFixed(0)} ms`);
    await tab!.context.close();
  }

  // 10k records into one tab, then a fresh tab syncs them over WebRTC (a network whose epoch is still open).
  await relay.stop();
  writeFileSync(networkFile, JSON.stringify(sync));
  await relay.start();
  const [holder] = await openTabs(browser, 1, relay.healthUrl, server.url);
  await holder!.page.evaluate(() => window.webtensor.ready);
  const imported = await importRecords(holder!.page, tenK);
  importMs = imported.ms;
  console.log(`chromium: 10k records checked and stored in ${importMs.toFixed(0)} ms`);
  const started = Date.now();
  const [fresh] = await openTabs(browser, 1, relay.healthUrl, server.url);
  fresh!.page.on('console', (m) => console.log(`[fresh tab] ${m.text()}`));
  const progress = setInterval(
    () =>
      void fresh!.page
        .evaluate(() => ({ records: window.webtensor.ledger.records, peers: window.webtensor.peers.length }))
        .then((p) => console.log(`[fresh tab] ${JSON.stringify(p)}`))
        .catch(() => {}),
    10_000,
  );
  await fresh!.page.waitForFunction((n) => window.webtensor.ledger.records >= n, tenK.length, {
    timeout: 300_000,
    polling: 100,
  });
  clearInterval(progress);
  syncMs = Date.now() - started;
  console.log(`chromium: a fresh tab synced 10k records in ${syncMs} ms (from page open)`);
  await holder!.context.close();
  await fresh!.context.close();
  await browser.close();
} finally {
  server.stop();
  await relay.stop();
}

// ---- Agreement and finality: 4 tabs on a fresh test network (3 validators staked 4:3:2, 1 client).
const server2 = await startPreview(PORT);
const relay2 = new RelayProcess(9992, 9993, undefined, ['--network', 'test']);
const finalMs: number[] = [];
const finalOfflineMs: number[] = [];
try {
  await relay2.start();
  const browser = await chromium.launch(chromiumLaunchOptions);
  const tabs = await openTabs(browser, 4, relay2.healthUrl, server2.url, (k) =>
    k < 3 ? 'role=validator' : 'role=client',
  );
  await Promise.all(tabs.map((x) => x.page.evaluate(() => window.webtensor.ready)));
  for (const [k, x] of tabs.slice(0, 3).entries()) {
    await x.page.waitForFunction(() => window.webtensor.ledger.uid !== null, undefined, { timeout: 90_000 });
    await x.page.evaluate(
      (amount) => window.webtensor.ledger.faucetStake(window.webtensor.peerId!, amount),
      String((4 - k) * 1e12),
    );
  }
  const config2 = (await (await fetch(relay2.networkUrl)).json()) as NetworkConfig;
  const tempo = config2.subnets[0]!.tempo;
  const endOf = (e: number) => config2.genesisMs + (e + 1) * tempo * config2.blockMs;
  // Permits come with the close after the stake; measure from the epoch after that.
  const currentEpoch = () => Math.floor((Date.now() - config2.genesisMs) / config2.blockMs / tempo);
  const firstEpoch = currentEpoch() + 1;
  const watch = async (pages: Page[], e: number, what: 'roots' | 'final') => {
    const seen = await Promise.all(
      pages.map(async (page) => {
        await page.waitForFunction(
          ([ep, w]) => window.webtensor.ledger.epochs.some((a) => a.epoch === ep && (w === 'roots' || a.final)),
          [e, what] as const,
          { timeout: 90_000, polling: 50 },
        );
        return {
          at: Date.now(),
          root: await page.evaluate((ep) => window.webtensor.ledger.epochs.find((a) => a.epoch === ep)!.stateRoot, e),
        };
      }),
    );
    if (new Set(seen.map((x) => x.root)).size !== 1) throw new Error(`tabs disagree on epoch ${e}`);
    return Math.max(...seen.map((x) => x.at)) - endOf(e);
  };
  const pages = tabs.map((x) => x.page);
  for (let e = firstEpoch; e < firstEpoch + 3; e++) {
    agreeMs.push(await watch(pages, e, 'roots'));
    finalMs.push(await watch(pages, e, 'final'));
    console.log(
      `epoch ${e}: same roots on 4 tabs ${agreeMs.at(-1)} ms after its end, final ${finalMs.at(-1)} ms after`,
    );
  }
  // The smallest validator (2 of 9 parts of the stake) goes away: the rest hold more than 2/3.
  await tabs[2]!.context.close();
  const rest = [pages[0]!, pages[1]!, pages[3]!];
  const after = currentEpoch() + 1;
  for (let e = after; e < after + 3; e++) {
    finalOfflineMs.push(await watch(rest, e, 'final'));
    console.log(`epoch ${e}, one validator offline: final ${finalOfflineMs.at(-1)} ms after its end`);
  }
  await browser.close();
} finally {
  server2.stop();
  await relay2.stop();
}

const markdown = `## Ledger (\`npm run bench:ledger\`)

Measured ${new Date().toISOString().slice(0, 10)} on ${machine()}.

| | result |
|---|---|
| records validated (schema, Ed25519 signature, clock; Node) | ${validatePerSecond.toFixed(0)} records/s |
| 10k records checked and stored in a tab (IndexedDB) | ${(importMs / 1000).toFixed(1)} s (${((tenK.length * 1000) / importMs).toFixed(0)} records/s) |
| a fresh tab syncs those 10k records over WebRTC, from page open | ${(syncMs / 1000).toFixed(1)} s |
| replay, 64 UIDs (${subnets.get(64)!.length} records, 3 epochs): consensus worker / Node | ${browserReplayMs.get(64)!.toFixed(0)} ms / ${nodeReplayMs.get(64)!.toFixed(0)} ms |
| replay, 256 UIDs (${subnets.get(256)!.length} records, 3 epochs): consensus worker / Node | ${browserReplayMs.get(256)!.toFixed(0)} ms / ${nodeReplayMs.get(256)!.toFixed(0)} ms |
| all of 4 tabs report the same roots, after an epoch's end (median of 3) | ${median(agreeMs)} ms |
| all of 4 tabs hold the epoch final (3 validators voting), after its end (median of 3) | ${median(finalMs)} ms |
| the same with one validator (2/9 of the stake) offline (median of 3) | ${median(finalOfflineMs)} ms |

The replays cover registering every UID, a quarter of them claiming test τ and staking it as validators, every
validator's commit of weights over all miners in epoch 1, its vote on that epoch's checkpoint and its reveal in
epoch 2, and closing three epochs (Yuma with n = 64 or 256 and every validator's row dense). A tab replays the
whole ledger from IndexedDB whenever records arrive or an epoch closes. Times "after its end" count from the
epoch's last block; they include the ${testProfile(0).graceBlocks}-block grace before an epoch closes, the tabs' 1 s
tick, the validators' votes (records, gossiped) and the replay that counts them.
`;
writeSection('ledger', markdown);
console.log(markdown);

// The 30-day production history: replay, close, storage, a tab's join, idle CPU and a flood.
await runMonth();
// Every node, relay and browser is stopped by now; a socket libp2p leaves half-closed must not keep the
// benchmark from ending.
process.exit(0);
