/**
 * npm run bench:p2p — a real relay and 2, 4 and 8 tabs (separate browser contexts) opened at once:
 * page load -> relay reservation -> first direct peer -> full direct mesh; RPC round trip (median, p95);
 * 10 MiB over one stream; Chromium CPU (idle mesh) and memory per tab. Then 40 headless nodes in four processes:
 * time to ready, connections per node, gossip latency to all, bytes per node per epoch. Writes docs/benchmarks.md.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chromium } from '@playwright/test';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { startSwarm } from '../core/testing/swarm-process.ts';
import { openTabs, type Tab } from '../e2e/support/tabs.ts';
import { machine, startPreview, writeSection } from './bench-lib.ts';
import { chromiumLaunchOptions } from './chromium.ts';

const counts = (process.env['BENCH_TABS'] ?? '2,4,8').split(',').map(Number);
const PORT = 4175;
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const p95 = (v: number[]) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(v.length * 0.95))]!;

/** CPU seconds (user + system) and resident bytes of all processes whose command line mentions chromium. */
function chromiumUsage(): { cpuSeconds: number; rssBytes: number } {
  const pids = execFileSync('pgrep', ['-f', 'chromium'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  let cpu = 0;
  let rss = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      cpu += (Number(stat[11]) + Number(stat[12])) / ticks; // utime, stime
      rss += Number(stat[21]) * 4096; // rss pages
    } catch {
      /* process went away */
    }
  }
  return { cpuSeconds: cpu, rssBytes: rss };
}

interface Row {
  tabs: number;
  reservedMs: number;
  firstDirectMs: number;
  meshMs: number;
  rttMedian: number;
  rttP95: number;
  mbps: number;
  cpuPercent: number;
  memMiB: number;
}

// ---- Headless nodes: 40 in four swarm processes (core/testing/swarm.ts), no full mesh.
const SWARM_PORTS = [9292, 9293, 9294, 9295];
const PER_SWARM = 10;
const swarmChildren: ChildProcess[] = [];
let swarm:
  | {
      readyMs: number;
      maxConnections: number;
      meanConnections: number;
      meanDirect: number;
      p50: number;
      p95: number;
      bytesPerNodeEpoch: number;
    }
  | undefined;

interface SwarmNode {
  direct: number;
  connections: number;
}
const swarmGet = async <T>(port: number, path: string, method = 'GET') =>
  (await (await fetch(`http://127.0.0.1:${port}${path}`, { method })).json()) as T;
const swarmStats = async () => (await Promise.all(SWARM_PORTS.map((p) => swarmGet<SwarmNode[]>(p, '/stats')))).flat();
/** Bytes read and written by a process (sockets and files; the swarms touch no files: memory stores). */
const ioBytes = (pid: number) => {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return Number(/rchar: (\d+)/.exec(io)![1]) + Number(/wchar: (\d+)/.exec(io)![1]);
};

async function benchSwarm(healthUrl: string) {
  const started = performance.now();
  await Promise.all(SWARM_PORTS.map((port) => startSwarm(healthUrl, PER_SWARM, port, swarmChildren)));
  while (Math.min(...(await swarmStats()).map((n) => n.direct)) < 3) {
    if (performance.now() - started > 180_000)
      throw new Error('the swarm did not get every node 3 direct peers in 3 min');
    await new Promise((r) => setTimeout(r, 200));
  }
  const readyMs = performance.now() - started;
  const latencies: number[] = [];
  const before = swarmChildren.reduce((a, c) => a + ioBytes(c.pid!), 0);
  const epochStart = performance.now();
  for (let k = 0; k < 10; k++) {
    const port = SWARM_PORTS[k % SWARM_PORTS.length]!;
    const published = await swarmGet<{ id: string; at: number } | { error: string }>(
      port,
      `/publish?node=${k}`,
      'POST',
    );
    if ('error' in published) throw new Error(`the swarm could not publish: ${published.error}`);
    const { id, at } = published;
    const deadline = performance.now() + 60_000;
    for (;;) {
      if (performance.now() > deadline) throw new Error(`record ${id} did not reach every node in 60 s`);
      const arrivals = (
        await Promise.all(SWARM_PORTS.map((p) => swarmGet<(number | null)[]>(p, `/arrivals?id=${id}`)))
      ).flat();
      if (arrivals.every((a) => a !== null)) {
        latencies.push(...arrivals.map((a) => a! - at));
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  // Fill one epoch (20 s on the test network) before reading the byte counters.
  await new Promise((r) => setTimeout(r, Math.max(0, 20_000 - (performance.now() - epochStart))));
  const bytes = swarmChildren.reduce((a, c) => a + ioBytes(c.pid!), 0) - before;
  const stats = await swarmStats();
  return {
    readyMs,
    maxConnections: Math.max(...stats.map((n) => n.connections)),
    meanConnections: stats.reduce((a, n) => a + n.connections, 0) / stats.length,
    meanDirect: stats.reduce((a, n) => a + n.direct, 0) / stats.length,
    p50: median(latencies),
    p95: p95(latencies),
    bytesPerNodeEpoch: (bytes / stats.length) * (20_000 / (performance.now() - epochStart)),
  };
}

const server = await startPreview(PORT);
// The test network: the swarm's gossip probe publishes faucet claims, which the main network has no faucet for.
const relay = new RelayProcess(9290, 9291, undefined, ['--network', 'test']);
const rows: Row[] = [];
try {
  await relay.start();
  const browser = await chromium.launch(chromiumLaunchOptions);
  for (const n of counts) {
    const base = server.url;
    const tabs: Tab[] = await openTabs(browser, n, relay.healthUrl, base);
    // Times are performance.now() in each page: milliseconds since that page started loading.
    const timings = await Promise.all(
      tabs.map((t) =>
        // No named helpers inside evaluate(): tsx would wrap them in an __name() the page does not have.
        t.page.evaluate(async (want) => {
          await window.webtensor.ready;
          const reserved = performance.now();
          while (window.webtensor.peers.filter((p) => p.direct).length < 1) await new Promise((r) => setTimeout(r, 20));
          const first = performance.now();
          const deadline = performance.now() + 60_000;
          while (window.webtensor.peers.filter((p) => p.direct).length < want && performance.now() < deadline)
            await new Promise((r) => setTimeout(r, 20));
          const direct = window.webtensor.peers.filter((p) => p.direct).length;
          return { reserved, first, mesh: direct < want ? Infinity : performance.now(), direct };
        }, n - 1),
      ),
    );
    if (process.env['BENCH_DEBUG'])
      for (const [k, t] of tabs.entries())
        console.log(
          k,
          JSON.stringify(
            await t.page.evaluate(() => ({
              peers: window.webtensor.peers.length,
              relay: window.webtensor.relay,
              err: window.webtensor.error,
            })),
          ),
        );
    const stuck = timings.filter((t) => t.mesh === Infinity);
    if (stuck.length > 0)
      console.log(
        `  ${stuck.length} of ${n} tabs did not reach a full mesh within 60 s: ${timings.map((t) => t.direct).join(', ')} direct peers`,
      );
    const ids = await Promise.all(tabs.map((t) => t.page.evaluate(() => window.webtensor.peerId!)));
    const rtts = await tabs[0]!.page.evaluate(async (peer) => {
      const out: number[] = [];
      // Paced at 40 calls/s: the peer rate-limits at 50/s, and each call is timed on its own anyway.
      for (let k = 0; k < 200; k++) {
        const t = performance.now();
        await window.webtensor.rpc(peer, 'node.echo', k);
        out.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, Math.max(0, 25 - (performance.now() - t))));
      }
      return out;
    }, ids[1]!);
    const bytes = 10 * 1024 * 1024;
    const tp = await tabs[0]!.page.evaluate(([peer, b]) => window.webtensor.debug.throughput(peer, b), [
      ids[1]!,
      bytes,
    ] as const);
    if (tp.received !== bytes) throw new Error(`sink received ${tp.received} of ${bytes} bytes`);
    // Idle mesh: 10 s with nothing to do but pings and peer-list polls.
    const before = chromiumUsage();
    await new Promise((r) => setTimeout(r, 10_000));
    const after = chromiumUsage();
    rows.push({
      tabs: n,
      reservedMs: median(timings.map((t) => t.reserved)),
      firstDirectMs: median(timings.map((t) => t.first)),
      meshMs: Math.max(...timings.map((t) => t.mesh)),
      rttMedian: median(rtts),
      rttP95: p95(rtts),
      mbps: (bytes * 8) / 1e6 / (tp.ms / 1000),
      cpuPercent: ((after.cpuSeconds - before.cpuSeconds) / 10 / 2) * 100,
      memMiB: after.rssBytes / 2 ** 20 / n,
    });
    console.log(JSON.stringify(rows.at(-1)));
    for (const t of tabs) await t.context.close();
  }
  await browser.close();
  swarm = await benchSwarm(relay.healthUrl);
} finally {
  server.stop();
  for (const child of swarmChildren) child.kill('SIGTERM');
  await relay.stop();
}

const f0 = (x: number) => x.toFixed(0);
const f1 = (x: number) => x.toFixed(1);
const markdown = `## Peer-to-peer (\`npm run bench:p2p\`)

Measured ${new Date().toISOString().slice(0, 10)} on ${machine()}.
A real relay, N tabs in separate browser contexts opened at once (production build), relay peer list, at most 3
concurrent dials per tab, lower peer id dials. Times are from the start of each page load (median over tabs; the
mesh column is the slowest tab). RPC: 200 sequential signed \`node.echo\` calls tab 0 → tab 1, paced at 40/s (the limit is 50/s per peer). Throughput: 10 MiB on
one stream, timed until the receiver confirms. CPU: all Chromium processes over 10 s of idle mesh, % of 2 cores.
Memory: Chromium resident memory ÷ tabs (shared pages are counted once per process, so this overstates).

| tabs | → reservation (ms) | → first direct peer (ms) | → full mesh (ms) | RPC median / p95 (ms) | 10 MiB (Mbit/s) | idle CPU (% of 2 cores) | memory per tab (MiB) |
|---|---|---|---|---|---|---|---|
${rows.map((r) => `| ${r.tabs} | ${f0(r.reservedMs)} | ${f0(r.firstDirectMs)} | ${Number.isFinite(r.meshMs) ? f0(r.meshMs) : 'not in 60 s'} | ${f1(r.rttMedian)} / ${f1(r.rttP95)} | ${f0(r.mbps)} | ${f0(r.cpuPercent)} | ${f0(r.memMiB)} |`).join('\n')}
`;
const swarmMarkdown = swarm
  ? `
**Headless nodes, no full mesh**: 40 nodes in 4 processes of 10 (\`core/testing/swarm.ts\`, test network) on the
same relay, which lists a random sample of 24 peers; each node dials up to 10 and holds at most 32 connections.
Ready: from spawning the processes to every node holding at least 3 direct peers. Gossip: 10 faucet claims from
nodes in every process, time until each of the 40 stored it (400 arrivals). Bytes: read plus written by the swarm
processes during one 20 s epoch with those 10 records (sockets; the nodes keep their ledgers in memory), per node.

| nodes | → ready (ms) | connections per node (max / mean) | direct peers (mean) | gossip to all (p50 / p95 ms) | bytes per node per epoch |
|---|---|---|---|---|---|
| 40 | ${f0(swarm.readyMs)} | ${swarm.maxConnections} / ${f1(swarm.meanConnections)} | ${f1(swarm.meanDirect)} | ${f0(swarm.p50)} / ${f0(swarm.p95)} | ${(swarm.bytesPerNodeEpoch / 1024).toFixed(0)} KiB |
`
  : '';
writeSection('p2p', markdown + swarmMarkdown);
console.log(`\n${markdown}${swarmMarkdown}`);
