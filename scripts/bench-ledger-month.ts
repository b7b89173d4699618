/**
 * The 30-day part of `npm run bench:ledger` (issue 13, item 7), on the synthetic production history of
 * bench-ledger-history.ts:
 *  1. replay from genesis vs a checkpointed replay of one more epoch (Node), and the close of one epoch at n = 256;
 *  2. storage: the records' JSON, the SQLite file of a node holding all of it and of a joined node;
 *  3. a fresh tab's time and bytes to join from two headless Node nodes serving the history, and sync the rest;
 *  4. that tab's CPU when idle;
 *  5. a flood of 20,000 junk messages on the records topic against that tab.
 * The browser parts wait for the e2e run (/tmp/e2e.log ends with EXIT) and hold /tmp/browser.lock.
 */
import '../shared/polyfills.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type CDPSession } from '@playwright/test';
import { multiaddr } from '@multiformats/multiaddr';
import { clientConfig } from '../core/config.ts';
import { MemoryLedgerStore } from '../core/memory-ledger-store.ts';
import { WebtensorNode } from '../core/node.ts';
import { createNodePlatform } from '../core/nodejs/platform.ts';
import { SqliteLedgerStore } from '../core/nodejs/sqlite-ledger-store.ts';
import { waitFor } from '../core/store.ts';
import { rowOf } from '../core/testing/fakes.ts';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { CheckpointedReplay } from '../shared/ledger/checkpointed-replay.ts';
import { closeEpoch } from '../shared/ledger/epoch.ts';
import { keptProof, type JoinedBase } from '../shared/ledger/join.ts';
import { replay, type StoredRecord } from '../shared/ledger/replay.ts';
import { signRecord } from '../shared/ledger/records.ts';
import { stateRootParts } from '../shared/ledger/state.ts';
import { StateDigest, stateFromText } from '../shared/ledger/state-text.ts';
import { TOPICS } from '../shared/names.ts';
import {
  BENCH_DIFFICULTY,
  epochSpecs,
  monthHistory,
  signSpecs,
  stakedOf,
  STAKE_OPS_PER_EPOCH,
  TRANSFERS_PER_EPOCH,
  UIDS,
  USERS,
  VALIDATORS,
  type History,
} from './bench-ledger-history.ts';
import { machine, startPreview, writeSection } from './bench-lib.ts';
import { chromiumLaunchOptions, webrtcPermissions } from './chromium.ts';

const PREVIEW_PORT = 4178;
const RELAY_PORTS = [9980, 9981] as const;
const FLOOD = 20_000;
const IDLE_SECONDS = 30;

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const fileSize = (path: string) =>
  [path, `${path}-wal`, `${path}-shm`].reduce((s, p) => s + (existsSync(p) ? statSync(p).size : 0), 0);

export interface MonthResults {
  history: History;
  records: number;
  fullMs: number;
  checkpointedMs: number;
  checkpointedRecords: number;
  closeMs: number;
  parseMs: number;
  hashMs: number;
  unchangedMs: number;
  closeEpochMs: number;
  stateChars: number;
  stateEntries: number;
  rehashedEntries: number;
  jsonBytes: number;
  fullSqlite: number;
  joinedSqlite: number;
  /** The chain's proof whole and as kept (thinned): [whole, kept]. */
  proof: { links: [number, number]; votes: [number, number]; chars: { whole: number; kept: number } };
  joinedRows: number;
  tab?: TabResults;
}

interface TabResults {
  nodeStartMs: number[];
  joinMs: number;
  syncedMs: number | null;
  recordsAtSync: number;
  join: unknown;
  wsBytes: number;
  rtcBytes: number;
  httpBytes: number;
  idleMainPct: number;
  idleRendererPct: number;
  flood: {
    sent: number;
    failed: number;
    ms: number;
    before: number;
    after: number;
    gossip: unknown;
    alive: boolean;
    meshed: boolean;
  };
}

/** Part 1 and 2: Node only. `dirs` receive the two nodes' SQLite files (for part 3). */
async function nodeParts(h: History, dirs: { full: string; joined: string }): Promise<MonthResults> {
  const { config, records, epochs: E } = h;
  const tempo = config.subnets[0]!.tempo;
  const now = E * tempo + 8;
  const from = (rs: readonly StoredRecord[]) => ({
    recordsFrom: async (block: number) => rs.filter((r) => r.record.block >= block),
    joinedBase: async () => null,
  });

  // 1a. From genesis, as the first replay after a start does.
  const replays = new CheckpointedReplay();
  let t = performance.now();
  const first = await replays.run(config, from(records), now);
  const fullMs = performance.now() - t;
  const r = first.result;
  if (r.lastVotedFinal !== E - 1 || Object.keys(r.refused).length > 0)
    throw new Error(
      `the history did not replay cleanly: final ${r.lastVotedFinal}, ${Object.keys(r.refused).length} refused`,
    );
  console.log(`month: replay from genesis of ${records.length} records, ${E} epochs: ${fullMs.toFixed(0)} ms`);

  // 1b. One more epoch (commits after the votes already dated in it, reveals, users), from the last final state.
  const specs = epochSpecs(config, h.actors, E, stakedOf(records)).map((s) =>
    s.kind === 'weights.commit' ? { ...s, block: E * tempo + 8 } : s,
  );
  const extra = await signSpecs(config, specs);
  t = performance.now();
  const second = await replays.run(config, from([...records, ...extra]), (E + 1) * tempo);
  const checkpointedMs = performance.now() - t;
  if (second.startedAfter !== E - 1 || Object.keys(second.result.refused).length > 0)
    throw new Error(
      `checkpointed replay started after ${second.startedAfter}, refused ${JSON.stringify(second.result.refused)}`,
    );
  console.log(
    `month: checkpointed replay of one more epoch (${second.replayed} records): ${checkpointedMs.toFixed(0)} ms`,
  );

  // 1c. Closing one epoch at n = 256: a replay of exactly one epoch's records from the state at the close before,
  // with the entry hashes remembered from the closes before (as a node's checkpointed replay keeps them).
  const closes: number[] = [];
  const parses: number[] = [];
  const hashes: number[] = [];
  const incremental: number[] = [];
  const yumas: number[] = [];
  const digest = new StateDigest();
  let stateChars = 0;
  let entries = 0;
  let rehashed = 0;
  for (let k = E - 11; k < E; k++) {
    const text = r.recentStates.get(k - 1)!;
    const base = { epoch: k - 1, stateText: text, chain: r.chain.slice(0, k) };
    const epochRecords = records.filter((x) => x.record.block >= k * tempo && x.record.block < (k + 1) * tempo);
    t = performance.now();
    const one = replay(config, epochRecords, (k + 1) * tempo, base, digest);
    // The first close only fills the digest.
    if (k > E - 11) closes.push(performance.now() - t);
    if (one.chain.at(-1)!.stateRoot !== r.chain[k]!.stateRoot) throw new Error(`epoch ${k}: roots differ`);
    rehashed = digest.rehashed.entries;
    t = performance.now();
    const state = stateFromText(text);
    parses.push(performance.now() - t);
    t = performance.now();
    const parts = stateRootParts(state);
    hashes.push(performance.now() - t);
    stateChars = parts.text.length;
    entries = parts.text.split('\n').length;
    const warm = new StateDigest();
    warm.digest(state);
    t = performance.now();
    warm.digest(state);
    incremental.push(performance.now() - t);
    t = performance.now();
    closeEpoch(state, config, config.subnets[0]!);
    yumas.push(performance.now() - t);
  }
  const [closeMs, parseMs, hashMs, unchangedMs, closeEpochMs] = [closes, parses, hashes, incremental, yumas].map(
    median,
  ) as [number, number, number, number, number];
  console.log(
    `month: close of one epoch (replay of its ${Math.round(records.length / E)} records from the close before): ${closeMs.toFixed(1)} ms; ` +
      `of which stateFromText ${parseMs.toFixed(1)} ms, closeEpoch ${closeEpochMs.toFixed(1)} ms; ` +
      `the state: ${entries} entries, ${stateChars} chars, ${rehashed} entries rehashed at the last close; ` +
      `text + body hash ${hashMs.toFixed(1)} ms from nothing, ${unchangedMs.toFixed(1)} ms for a state the digest has seen`,
  );

  // 2. Storage.
  const jsonBytes = records.reduce((s, x) => s + Buffer.byteLength(JSON.stringify(x.record)), 0);
  const rows = (rs: readonly StoredRecord[]) => rs.map((r) => rowOf(r, 'import', Date.now()));
  const sqlitePath = (dir: string) => join(dir, `ledger-${config.networkId}.sqlite`);
  const full = SqliteLedgerStore.open(sqlitePath(dirs.full));
  const all = rows(records);
  for (let k = 0; k < all.length; k += 5000) await full.put(all.slice(k, k + 5000));
  full.close();
  const fullSqlite = fileSize(sqlitePath(dirs.full));
  // A node joined at the last final epoch: the base (state, chain, the votes that proved it, the prefix) and the
  // records after it.
  const finalState = r.finalState!;
  // The votes dated before its next epoch: those on the last link are records it stores after the base.
  const baseVotes = records
    .filter((x) => x.record.kind === 'checkpoint' && x.record.block < (finalState.epoch + 1) * tempo)
    .map((x) => x.record);
  // What a joined or pruning node keeps of the chain: the thinned proof (shared/ledger/join.ts, keptProof).
  const proof = keptProof(config, r.chain, baseVotes, finalState.epoch);
  const base: JoinedBase = {
    epoch: finalState.epoch,
    stateText: finalState.text,
    ...proof,
    prefix: records.filter((x) => x.record.block < tempo).map((x) => x.record),
    from: 'bench',
    at: Date.now(),
  };
  const proofChars = {
    whole: JSON.stringify([r.chain.slice(0, finalState.epoch + 1), baseVotes]).length,
    kept: JSON.stringify([proof.chain, proof.votes]).length,
  };
  console.log(
    `month: the chain's proof: ${finalState.epoch + 1} links and ${baseVotes.length} votes (${mib(proofChars.whole)}) whole; ${proof.chain.length} links and ${proof.votes.length} votes (${mib(proofChars.kept)}) kept`,
  );
  const joined = SqliteLedgerStore.open(sqlitePath(dirs.joined));
  const after = records.filter((x) => x.record.block >= (finalState.epoch + 1) * tempo);
  await joined.setBase(base, (finalState.epoch + 1) * tempo);
  await joined.put(rows(after));
  joined.close();
  const joinedSqlite = fileSize(sqlitePath(dirs.joined));
  console.log(
    `month: ${mib(jsonBytes)} of JSON records; SQLite ${mib(fullSqlite)} (all of history), ${mib(joinedSqlite)} (joined at epoch ${finalState.epoch}, ${after.length} records after its base)`,
  );
  return {
    history: h,
    records: records.length,
    fullMs,
    checkpointedMs,
    checkpointedRecords: second.replayed,
    closeMs,
    parseMs,
    hashMs,
    unchangedMs,
    closeEpochMs,
    stateChars,
    stateEntries: entries,
    rehashedEntries: rehashed,
    jsonBytes,
    fullSqlite,
    joinedSqlite,
    proof: {
      links: [finalState.epoch + 1, proof.chain.length],
      votes: [baseVotes.length, proof.votes.length],
      chars: proofChars,
    },
    joinedRows: after.length,
  };
}

/** Wait for the e2e run to finish, then hold /tmp/browser.lock (a child `flock … cat` holds it until released). */
async function browserLock(): Promise<() => void> {
  for (let waited = 0; ; waited += 10) {
    const log = existsSync('/tmp/e2e.log') ? readFileSync('/tmp/e2e.log', 'utf8') : 'EXIT';
    if (/^EXIT/m.test(log)) break;
    if (waited % 60 === 0) console.log(`month: waiting for the e2e run to end (/tmp/e2e.log has no EXIT line yet)`);
    await new Promise((r) => setTimeout(r, 10_000));
  }
  const holder: ChildProcess = spawn('flock', ['/tmp/browser.lock', 'sh', '-c', 'echo locked; exec cat'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.once('data', () => resolve());
    holder.once('exit', (code) => reject(new Error(`flock exited ${code}`)));
  });
  console.log('month: holding /tmp/browser.lock');
  return () => {
    holder.stdin!.end();
    holder.kill('SIGTERM');
  };
}

/** Records every RTCPeerConnection (as e2e/support/tabs.ts does) so the bench can read their bytes received. */
const recordPeerConnections = `(() => {
  const Native = window.RTCPeerConnection; const all = []; window.__peerConnections = all;
  window.RTCPeerConnection = class extends Native { constructor(c) { super(c); all.push(this); } };
})();`;

async function cpuSeconds(cdp: CDPSession): Promise<number> {
  const { processInfo } = (await cdp.send('SystemInfo.getProcessInfo')) as {
    processInfo: { type: string; id: number; cpuTime: number }[];
  };
  return processInfo.filter((p) => p.type === 'renderer').reduce((s, p) => s + p.cpuTime, 0);
}

async function taskSeconds(cdp: CDPSession): Promise<number> {
  const { metrics } = (await cdp.send('Performance.getMetrics')) as { metrics: { name: string; value: number }[] };
  return metrics.find((m) => m.name === 'TaskDuration')!.value;
}

/** Parts 3 to 5: two Node nodes serve the history; a fresh tab joins, idles, and is flooded. */
async function tabParts(m: MonthResults, dirs: { full: string; joined: string; flooder: string }): Promise<TabResults> {
  const { config, epochs: E } = m.history;
  const networkFile = join(mkdtempSync(join(tmpdir(), 'bench-month-')), 'network.json');
  writeFileSync(networkFile, JSON.stringify(config));
  const release = await browserLock();
  const relay = new RelayProcess(RELAY_PORTS[0], RELAY_PORTS[1], undefined, ['--network', networkFile]);
  const server = await startPreview(PREVIEW_PORT);
  const nodes: WebtensorNode[] = [];
  try {
    await relay.start();
    // The two serving nodes: one with all of history (its first replay runs from genesis), one joined.
    const nodeStartMs: number[] = [];
    for (const dataDir of [dirs.full, dirs.joined]) {
      const t = performance.now();
      const node = new WebtensorNode(
        clientConfig({ healthUrl: relay.healthUrl }),
        createNodePlatform({ dataDir, durable: true }),
      );
      nodes.push(node);
      const services = await node.start();
      console.log(`month: node ${services.peerId} (${dataDir})`);
      await waitFor(
        services.ledger!.consensus.snapshot,
        (s) => (s?.lastVotedFinal ?? -1) >= E - 1,
        AbortSignal.timeout(600_000),
      );
      nodeStartMs.push(performance.now() - t);
      console.log(`month: node (${dataDir}) started, final through ${E - 1}, in ${nodeStartMs.at(-1)!.toFixed(0)} ms`);
    }

    const browser = await chromium.launch(chromiumLaunchOptions);
    const browserCdp = await browser.newBrowserCDPSession();
    const context = await browser.newContext({ permissions: webrtcPermissions, baseURL: server.url });
    await context.addInitScript({ content: recordPeerConnections });
    const page = await context.newPage();
    if (process.env['TAB_CONSOLE']) page.on('console', (msg) => console.log(`[tab] ${msg.text()}`));
    const cdp = await context.newCDPSession(page);
    let wsBytes = 0;
    let httpBytes = 0;
    cdp.on('Network.webSocketFrameReceived', (e: { response: { opcode: number; payloadData: string } }) => {
      const { opcode, payloadData } = e.response;
      wsBytes += opcode === 2 ? Buffer.from(payloadData, 'base64').length : Buffer.byteLength(payloadData);
    });
    cdp.on('Network.loadingFinished', (e: { encodedDataLength: number }) => (httpBytes += e.encodedDataLength));
    await cdp.send('Network.enable');
    await cdp.send('Performance.enable');

    // 3. Join and sync.
    const started = performance.now();
    const progress = setInterval(
      () =>
        void page
          .evaluate(() => ({
            peers: window.webtensor.peers.length,
            records: window.webtensor.ledger.records,
            block: window.webtensor.ledger.block,
            join: window.webtensor.ledger.join,
            baseEpoch: window.webtensor.ledger.baseEpoch,
          }))
          .then((p) =>
            console.log(
              `month: [tab after ${((performance.now() - started) / 1000).toFixed(0)} s] ${JSON.stringify(p)}`,
            ),
          )
          .catch(() => {}),
      5000,
    );
    await page.goto(`/?autostart=1&relay=${encodeURIComponent(relay.healthUrl)}&role=client`);
    await page.waitForFunction(() => window.webtensor.ledger.join !== null, undefined, {
      timeout: 300_000,
      polling: 100,
    });
    const joinMs = performance.now() - started;
    const join = await page.evaluate(() => window.webtensor.ledger.join);
    console.log(`month: tab joined in ${joinMs.toFixed(0)} ms: ${JSON.stringify(join)}`);
    const after = m.joinedRows;
    // Synced: epoch E-1 final on the tab and the records after the base held. If the join failed, the tab syncs
    // all of history instead; give it BENCH_MONTH_SYNC_S seconds (default 120) and report how far it got.
    const synced = await page
      .waitForFunction(
        ([e, n]) =>
          window.webtensor.ledger.records >= n && window.webtensor.ledger.epochs.some((a) => a.epoch === e && a.final),
        [E - 1, after] as const,
        { timeout: Number(process.env['BENCH_MONTH_SYNC_S'] ?? 120) * 1000, polling: 100 },
      )
      .then(() => true)
      .catch(() => false);
    const recordsAtSync = await page.evaluate(() => window.webtensor.ledger.records);
    const syncedMs = synced ? performance.now() - started : null;
    clearInterval(progress);
    const rtcBytes = await page.evaluate(async () => {
      const pcs = (window as unknown as { __peerConnections: RTCPeerConnection[] }).__peerConnections;
      let sum = 0;
      for (const pc of pcs)
        (await pc.getStats()).forEach((s: { type: string; bytesReceived?: number }) => {
          if (s.type === 'transport') sum += s.bytesReceived ?? 0;
        });
      return sum;
    });
    const bytesAtSync = { ws: wsBytes, http: httpBytes, rtc: rtcBytes };
    console.log(
      `month: tab ${syncedMs === null ? `NOT synced after ${((performance.now() - started) / 1000).toFixed(0)} s (${recordsAtSync} records)` : `synced in ${syncedMs.toFixed(0)} ms`}; received ${mib(bytesAtSync.ws)} over WebSockets, ${mib(rtcBytes)} over WebRTC, ${mib(httpBytes)} of app over HTTP`,
    );

    // 4. Idle CPU.
    await new Promise((r) => setTimeout(r, 5000));
    const [main0, cpu0, at0] = [await taskSeconds(cdp), await cpuSeconds(browserCdp), performance.now()];
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const [main1, cpu1, at1] = [await taskSeconds(cdp), await cpuSeconds(browserCdp), performance.now()];
    const wall = (at1 - at0) / 1000;
    const idleMainPct = ((main1 - main0) / wall) * 100;
    const idleRendererPct = ((cpu1 - cpu0) / wall) * 100;
    console.log(
      `month: idle tab over ${wall.toFixed(0)} s: main thread ${idleMainPct.toFixed(1)} % (TaskDuration), renderer process ${idleRendererPct.toFixed(1)} % of a core`,
    );

    // 5. Flood from a Node peer of our own: junk on the records topic, as fast as it publishes.
    const flooder = new WebtensorNode(
      clientConfig({ healthUrl: relay.healthUrl }),
      createNodePlatform({ dataDir: dirs.flooder, store: new MemoryLedgerStore() }),
    );
    nodes.push(flooder);
    const fs = await flooder.start();
    const topic = TOPICS.records(config.networkId);
    const tabPeer = (await page.evaluate(() => window.webtensor.peerId))!;
    // Dial the tab ourselves (WebRTC signalled through the relay), as an attacker would: a tab that already holds
    // its target number of peers does not go looking for more, and would never hear the flood otherwise.
    const circuit = `/ip4/127.0.0.1/tcp/${relay.port}/ws/p2p/${relay.peerId}/p2p-circuit/webrtc/p2p/${tabPeer}`;
    await fs.libp2p
      .dial(multiaddr(circuit), { signal: AbortSignal.timeout(30_000) })
      .catch((err: Error) => console.log(`month: the flooder could not dial the tab: ${err.message}`));
    const deadline = Date.now() + 120_000;
    while (!fs.libp2p.services.pubsub.getSubscribers(topic).some((p) => p.toString() === tabPeer)) {
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const meshed = fs.libp2p.services.pubsub.getSubscribers(topic).some((p) => p.toString() === tabPeer);
    if (!meshed)
      console.log('month: the flooder never saw the tab subscribed to the records topic (120 s); flooding anyway');
    const before = await page.evaluate(() => window.webtensor.ledger.records);
    const sample = m.history.records.at(-1)!.record;
    const junk = async (k: number): Promise<Uint8Array> => {
      if (k % 3 === 0) return crypto.getRandomValues(new Uint8Array(64 + (k % 512)));
      if (k % 3 === 1) return new TextEncoder().encode(`{"v":1,"junk":${k},`);
      // Well formed and signed by the flooder's key, but for a record of someone else's chain: bad signature.
      const forged = await signRecord(fs.key, { ...sample, seq: sample.seq + k } as never);
      return new TextEncoder().encode(JSON.stringify({ ...forged, author: sample.author }));
    };
    let failed = 0;
    const t = performance.now();
    for (let k = 0; k < FLOOD; k += 200) {
      const batch = await Promise.all(Array.from({ length: Math.min(200, FLOOD - k) }, (_, j) => junk(k + j)));
      await Promise.all(batch.map((data) => fs.libp2p.services.pubsub.publish(topic, data).catch(() => void failed++)));
    }
    const floodMs = performance.now() - t;
    await new Promise((r) => setTimeout(r, 5000));
    const afterFlood = await page.evaluate(() => ({
      records: window.webtensor.ledger.records,
      gossip: window.webtensor.ledger.gossip,
      block: window.webtensor.ledger.block,
    }));
    const alive = afterFlood.block !== null && (await page.evaluate(() => window.webtensor.peers.length)) > 0;
    console.log(
      `month: flood of ${FLOOD} junk messages in ${floodMs.toFixed(0)} ms (${failed} publishes failed): tab records ${before} → ${afterFlood.records}; gossip ${JSON.stringify(afterFlood.gossip)}`,
    );
    await browser.close();
    return {
      nodeStartMs,
      joinMs,
      syncedMs,
      recordsAtSync,
      join,
      wsBytes: bytesAtSync.ws,
      rtcBytes,
      httpBytes: bytesAtSync.http,
      idleMainPct,
      idleRendererPct,
      flood: {
        sent: FLOOD,
        failed,
        ms: floodMs,
        before,
        after: afterFlood.records,
        gossip: afterFlood.gossip,
        alive,
        meshed,
      },
    };
  } finally {
    for (const n of nodes) await n.stop().catch(() => {});
    server.stop();
    await relay.stop();
    release();
  }
}

export async function benchMonth(days = Number(process.env['BENCH_HISTORY_DAYS'] ?? 30)): Promise<MonthResults> {
  const h = await monthHistory(days);
  const root = mkdtempSync(join(tmpdir(), 'bench-month-nodes-'));
  const dirs = { full: join(root, 'full'), joined: join(root, 'joined'), flooder: join(root, 'flooder') };
  const m = await nodeParts(h, dirs);
  if (process.env['BENCH_MONTH_NO_TAB'] !== '1') m.tab = await tabParts(m, dirs);
  return m;
}

const target = (ok: boolean, what: string) => `${ok ? 'met' : 'missed'} (target ${what})`;

export function monthMarkdown(m: MonthResults, measured: string): string {
  const h = m.history;
  const E = h.epochs;
  const t = m.tab;
  const lines = [
    `### A ${h.days}-day production history`,
    '',
    measured,
    '',
    `Synthetic history (\`scripts/bench-ledger-history.ts\`): production timing (12 s blocks, tempo 360), ${E} epochs, one subnet of ${UIDS} UIDs whose ${VALIDATORS} validators commit every epoch, reveal weights over all ${UIDS} UIDs and vote on every checkpoint (every epoch final by votes), and ${TRANSFERS_PER_EPOCH + STAKE_OPS_PER_EPOCH} transfers and stake changes per epoch by ${USERS} users: ${m.records} records. The bench config is the production profile with one subnet, funded bench keys and a registration proof of work of ${BENCH_DIFFICULTY} bits instead of 20. ${h.cached ? `Read from the cache (\`${h.file}\`, generated ${h.generatedAt} in ${(h.generationMs / 1000).toFixed(0)} s)` : `Generated in ${(h.generationMs / 1000).toFixed(0)} s and cached in \`${h.file}\``}.`,
    '',
    '| | result | target |',
    '|---|---|---|',
    `| replay from genesis, all ${E} epochs (Node) | ${(m.fullMs / 1000).toFixed(1)} s | |`,
    `| checkpointed replay of one more epoch from the last final state (Node, ${m.checkpointedRecords} records) | ${m.checkpointedMs.toFixed(0)} ms | |`,
    `| close of one epoch at n = 256 (replay of one epoch's records from the close before, entry hashes remembered from the closes before, median of 10) | ${m.closeMs.toFixed(0)} ms | ${target(m.closeMs < 100, 'under 100 ms')} |`,
    `| of which: stateFromText (parse the base) / closeEpoch (Yuma + emission) | ${m.parseMs.toFixed(1)} / ${m.closeEpochMs.toFixed(1)} ms | |`,
    `| the state's text and body hash (${m.stateEntries} entries, ${(m.stateChars / 1e6).toFixed(2)} M chars; ${m.rehashedEntries} entries changed at a close): from nothing / for a state the digest has seen (what a close costs beyond the entries it changed) | ${m.hashMs.toFixed(1)} / ${m.unchangedMs.toFixed(1)} ms | |`,
    `| records as JSON | ${mib(m.jsonBytes)} | |`,
    `| SQLite file of a Node node holding all of it | ${mib(m.fullSqlite)} | |`,
    `| SQLite file of a node joined at epoch ${E - 1} (base + ${m.joinedRows} records) | ${mib(m.joinedSqlite)} | |`,
    `| the chain's proof a joined node keeps and serves (thinned), against the whole chain | ${m.proof.links[1]} links and ${m.proof.votes[1]} votes, ${mib(m.proof.chars.kept)}; whole: ${m.proof.links[0]} links and ${m.proof.votes[0]} votes, ${mib(m.proof.chars.whole)} | grows with changes of voters, not with age |`,
  ];
  if (t) {
    const j = t.join as { links?: number; stateChars?: number; ms?: number; error?: string };
    lines.push(
      `| serving nodes started and final (full history / joined) | ${t.nodeStartMs.map((x) => `${(x / 1000).toFixed(1)} s`).join(' / ')} | |`,
      `| a fresh tab joins from a checkpoint (page open → \`ledger.join\` set) | ${(t.joinMs / 1000).toFixed(1)} s (${j.error ? `failed: ${j.error}` : `${j.links} links, ${((j.stateChars ?? 0) / 1e6).toFixed(2)} M chars of state, join ${(j.ms! / 1000).toFixed(1)} s`}) | ${target(t.joinMs < 15_000, 'under 15 s')} |`,
      `| … and has synced the rest (epoch ${E - 1} final, records after the base held) | ${t.syncedMs === null ? `not within ${process.env['BENCH_MONTH_SYNC_S'] ?? 120} s (${t.recordsAtSync} records held)` : `${(t.syncedMs / 1000).toFixed(1)} s`} | ${target(t.syncedMs !== null && t.syncedMs < 15_000, 'under 15 s')} |`,
      `| bytes the tab received by then: WebSocket frames (CDP) / WebRTC (getStats) / the app over HTTP | ${mib(t.wsBytes)} / ${mib(t.rtcBytes)} / ${mib(t.httpBytes)} | |`,
      `| the joined tab idle over ${IDLE_SECONDS} s: renderer process (SystemInfo cpuTime, main + workers) / main thread (TaskDuration) | ${t.idleRendererPct.toFixed(1)} % / ${t.idleMainPct.toFixed(1)} % of a core | ${target(t.idleRendererPct < 5, 'under 5 %')} |`,
      `| ${t.flood.sent} junk messages on the records topic from a Node peer (${t.flood.failed} publishes failed${t.flood.meshed ? '' : '; the tab was never among its subscribers, so none reached it'}) | ${(t.flood.ms / 1000).toFixed(1)} s; tab records ${t.flood.before} → ${t.flood.after}; gossip ${JSON.stringify(t.flood.gossip)} | ${t.flood.meshed ? target(t.flood.before === t.flood.after && t.flood.alive, 'no stored count changes') : 'not measured (no mesh with the tab)'} |`,
    );
  }
  return lines.join('\n');
}

/** Run the month bench and write its section of docs/benchmarks.md (after the ledger section). */
export async function runMonth(): Promise<void> {
  const m = await benchMonth();
  const markdown = monthMarkdown(m, `Measured ${new Date().toISOString().slice(0, 10)} on ${machine()}.`);
  writeSection('ledger-month', markdown);
  console.log(markdown);
}
