/**
 * A network of dozens without a full mesh: 40 headless nodes (four swarm processes of ten, core/testing/swarm.ts)
 * and 4 tabs on one relay that hands out a random sample of peers. Every node stays within its connection bound,
 * records spread by gossipsub's mesh to every node (the latency is printed; bench:p2p reports it), and all of
 * them agree on three epochs.
 */
import { expect, test } from '@playwright/test';
import type { ChildProcess } from 'node:child_process';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { stopProcess } from './support/processes.ts';
import { startSwarm } from '../core/testing/swarm-process.ts';
import { openTabs } from './support/tabs.ts';

const relay = new RelayProcess(9840, 9841, undefined, ['--network', 'test']);
const SWARMS = [9842, 9843, 9844, 9845];
const PER_SWARM = 10;
/** libp2p's connection bound on every node (core/libp2p-options.ts). */
const MAX_CONNECTIONS = 32;
const swarms: ChildProcess[] = [];

test.setTimeout(420_000);
test.beforeAll(() => relay.start());
test.afterAll(async () => {
  await Promise.all(swarms.map((s) => stopProcess(s)));
  await relay.stop();
});

interface NodeStats {
  peerId: string;
  direct: number;
  connections: number;
  records: number;
  epochs: string[];
}

const get = async <T>(port: number, path: string, method = 'GET'): Promise<T> =>
  (await (await fetch(`http://127.0.0.1:${port}${path}`, { method })).json()) as T;
const allStats = async () => (await Promise.all(SWARMS.map((p) => get<NodeStats[]>(p, '/stats')))).flat();

test('40 headless nodes and 4 tabs: bounded connections, records at every node (latency measured), three epochs agreed', async ({
  browser,
}) => {
  // The nodes first, starting a network together; the tabs join it. (Forty nodes joining four tabs' network
  // instead all sync from those tabs at once: they took 110-130 s to start.)
  const started = Date.now();
  await Promise.all(SWARMS.map((port) => startSwarm(relay.healthUrl, PER_SWARM, port, swarms)));
  console.log(`40 nodes started in ${Date.now() - started} ms`);
  const tabs = await openTabs(browser, 4, relay.healthUrl);
  await Promise.all(tabs.map((t) => t.page.evaluate(() => window.webtensor.ready)));

  // Everyone finds some peers directly, and nobody holds more connections than the bound.
  await expect
    .poll(
      async () => {
        const stats = await allStats();
        const lonely = stats.filter((s) => s.direct < 3);
        const direct = stats.map((s) => s.direct).sort((a, b) => a - b);
        console.log(
          `${Date.now() - started} ms: ${lonely.length} nodes below 3 direct peers; direct: ${direct.join(',')}`,
        );
        // Everything about the nodes still short of peers, so a failure says why.
        return lonely.length === 0 ? 'every node has 3 direct peers' : JSON.stringify(lonely.slice(0, 3));
      },
      // Eventually, not by a deadline: on 2 cores, 44 nodes' WebRTC dials through one relay take up to 15 s each,
      // and a node whose first dials time out takes a minute or more (bench:p2p measures the time).
      { timeout: 120_000 },
    )
    .toBe('every node has 3 direct peers');
  for (const t of tabs)
    await expect
      .poll(() => t.page.evaluate(() => window.webtensor.peers.filter((p) => p.direct).length), { timeout: 60_000 })
      .toBeGreaterThanOrEqual(2);
  const stats = await allStats();
  console.log(
    `connections per node: max ${Math.max(...stats.map((s) => s.connections))}, mean ${(
      stats.reduce((a, s) => a + s.connections, 0) / stats.length
    ).toFixed(1)}; direct peers: min ${Math.min(...stats.map((s) => s.direct))}`,
  );
  for (const s of stats) expect(s.connections).toBeLessThanOrEqual(MAX_CONNECTIONS);

  // Records published from nodes in every swarm reach all 40 nodes; the time to each is measured.
  const latencies: number[] = [];
  for (let k = 0; k < 12; k++) {
    const port = SWARMS[k % SWARMS.length]!;
    const { id, at } = await get<{ id: string; at: number }>(port, `/publish?node=${k % PER_SWARM}`, 'POST');
    await expect
      .poll(
        async () => {
          const arrived = (
            await Promise.all(SWARMS.map((p) => get<(number | null)[]>(p, `/arrivals?id=${id}`)))
          ).flat();
          if (arrived.every((a) => a !== null)) return 'at every node';
          // The nodes still without it, and why they might be (their peers, relay and dials), for the failure report.
          const stats = await allStats();
          return JSON.stringify(
            arrived.flatMap((a, i) => (a === null ? [{ ...stats[i]!, epochs: undefined, node: i, record: k }] : [])),
          );
        },
        // (Sync brings what gossip missed, every few seconds: allow it a few rounds on a loaded machine.)
        { timeout: 60_000 },
      )
      .toBe('at every node');
    const arrivals = (await Promise.all(SWARMS.map((p) => get<number[]>(p, `/arrivals?id=${id}`)))).flat();
    latencies.push(...arrivals.map((a) => a - at));
  }
  latencies.sort((a, b) => a - b);
  const p95 = latencies[Math.floor(latencies.length * 0.95)]!;
  console.log(
    `gossip latency to 40 nodes over ${latencies.length} arrivals: p50 ${latencies[latencies.length >> 1]} ms, p95 ${p95} ms`,
  );
  // Timed assertions do not belong in tests (a loaded machine is slower, not wrong): every record reached every
  // node (above); the time is measured and reported here and by `npm run bench:p2p` (p95 851 ms, target 2 s).
  // The tabs have them too.
  for (const t of tabs)
    await expect
      .poll(() => t.page.evaluate(() => window.webtensor.ledger.records), { timeout: 60_000 })
      .toBeGreaterThanOrEqual(12);

  // Three epochs after the records, every node and every tab reports the same roots for each. Each replays on its
  // own tick, so the check waits until the slowest of them (a node or a tab) has closed all three.
  const tabRoots = () =>
    Promise.all(
      tabs.map((t) =>
        t.page.evaluate(() => window.webtensor.ledger.epochs.map((e) => `${e.epoch}:${e.recordsRoot}:${e.stateRoot}`)),
      ),
    );
  const everyonesEpochs = async () => [...(await allStats()).map((s) => s.epochs), ...(await tabRoots())];
  const lastEpoch = async () =>
    Math.min(...(await everyonesEpochs()).map((epochs) => Number(epochs.at(-1)?.split(':')[0] ?? -1)));
  const first = await lastEpoch();
  await expect.poll(lastEpoch, { timeout: 90_000, intervals: [2000] }).toBeGreaterThanOrEqual(first + 3);
  const wanted = [first + 1, first + 2, first + 3];
  const rootsOf = (epochs: string[]) => epochs.filter((e) => wanted.includes(Number(e.split(':')[0])));
  const everyone = (await everyonesEpochs()).map(rootsOf);
  expect(everyone[0]).toHaveLength(3);
  for (const r of everyone) expect(r).toEqual(everyone[0]);
  for (const t of tabs) expect(t.errors).toEqual([]);
  for (const t of tabs) await t.context.close();
});
