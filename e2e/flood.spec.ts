/**
 * Attacks by volume against real tabs (issue 13, item 6), the adversary a real Node peer built from the project's
 * own code (support/adversary.ts) speaking only the wire protocol:
 *
 * 1. A flood of validly signed junk on the records topic (unfunded transfers, weights from unregistered keys,
 *    unstakes of stake nobody holds, checkpoint votes from non-voters, records over 48 KiB, records beyond the
 *    per-block quota), also served by its sync. No tab stores any of it, every tab hangs up on the sender, and
 *    the tabs keep closing epochs on time.
 * 2. Sixteen identities registering on a subnet full of honest miners as fast as the rules allow. Every tab's
 *    replay takes at most `maxPerBlock` per block, never evicts an immune UID, evicts no more honest miners than
 *    the rules allow, raises the burn after an epoch over target, and every tab reports the same state.
 */
import '../shared/polyfills.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { RECORDS_PER_AUTHOR_PER_BLOCK } from '../shared/ledger/admission.ts';
import type { NetworkConfig } from '../shared/ledger/config.ts';
import { testProfile } from '../shared/ledger/profiles.ts';
import type { SubnetView } from '../web/src/automation.ts';
import { Adversary } from './support/adversary.ts';
import { openTabs, type Tab } from './support/tabs.ts';

const dir = mkdtempSync(join(tmpdir(), 'webtensor-flood-'));
const cleanup: (() => Promise<void>)[] = [];
test.afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => {});
});
test.afterAll(() => rmSync(dir, { recursive: true, force: true }));
// The registration flood took 3.0 min in a full local run: four epochs of registrations and checks on two cores.
test.setTimeout(360_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A relay on its own ports serving `network` (written to a file, as a deployment passes its own). */
async function relayFor(name: string, network: NetworkConfig, port: number): Promise<RelayProcess> {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(network));
  const relay = new RelayProcess(port, port + 1, undefined, ['--network', file]);
  await relay.start();
  cleanup.push(async () => void (await relay.stop()));
  return relay;
}

async function adversaryOn(name: string, relay: RelayProcess): Promise<Adversary> {
  const adversary = new Adversary(join(dir, name));
  cleanup.push(() => adversary.stop());
  await adversary.start(relay.healthUrl);
  return adversary;
}

async function tabsOn(browser: Parameters<typeof openTabs>[0], relay: RelayProcess, count: number, role: string) {
  const tabs = await openTabs(browser, count, relay.healthUrl, undefined, () => `role=${role}`);
  cleanup.push(async () => {
    for (const t of tabs) await t.context.close();
  });
  const pages = tabs.map((t) => t.page);
  for (const p of pages) await p.evaluate(() => window.webtensor.ready);
  for (const p of pages)
    await expect.poll(() => p.evaluate(() => window.webtensor.ledger.network !== null), { timeout: 30_000 }).toBe(true);
  const ids = await Promise.all(pages.map((p) => p.evaluate(() => window.webtensor.peerId!)));
  return { tabs, pages, ids };
}

/** The ids among `ids` a tab stores (asked in slices, so no evaluate carries megabytes). */
async function heldBy(page: Page, ids: readonly string[]): Promise<string[]> {
  const held: string[] = [];
  for (let k = 0; k < ids.length; k += 2000)
    held.push(...(await page.evaluate((slice) => window.webtensor.ledger.held(slice), ids.slice(k, k + 2000))));
  return held;
}

/** How far a tab's closed epochs trail the block clock: the last epoch closable now minus the last it closed. */
const epochLag = (page: Page, network: NetworkConfig) =>
  page.evaluate(
    ({ grace, tempo }) => {
      const ledger = window.webtensor.ledger;
      const closable = Math.floor(((ledger.block ?? 0) - grace) / tempo) - 1;
      const closed = ledger.summaries.at(-1)?.epoch ?? -1;
      return { closable, closed, lag: closable - closed };
    },
    { grace: network.graceBlocks, tempo: network.subnets[0]!.tempo },
  );

test('a flood of validly signed junk reaches no tab, the tabs hang up on its sender and keep closing epochs', async ({
  browser,
}) => {
  const network = testProfile(Math.ceil(Date.now() / 1000) * 1000 + 3000);
  const relay = await relayFor('flood', network, 9964);
  const { tabs, pages, ids: tabIds } = await tabsOn(browser, relay, 3, 'client');
  const adversary = await adversaryOn('flooder', relay);
  // It floods only once every tab would hear it: connected, and subscribed to the records topic.
  await expect
    .poll(() => adversary.subscribersAmong(tabIds).length, { timeout: 60_000, message: 'tabs subscribed' })
    .toBe(tabIds.length);
  adversary.stopReplays();
  const before = await Promise.all(pages.map((p) => p.evaluate(() => window.webtensor.ledger.gossip!)));

  // Sample while it floods: its connections to the tabs, and how far each tab's epochs trail the clock.
  const connections: { at: number; connected: number }[] = [];
  const lags: { at: number; tab: number; closable: number; closed: number; lag: number }[] = [];
  let sampling = true;
  const t0 = Date.now();
  const verdicts: { at: number; rejected: number[] }[] = [];
  const sampler = (async () => {
    while (sampling) {
      connections.push({ at: Date.now() - t0, connected: adversary.connectedTo(tabIds).length });
      const at = Date.now() - t0;
      (await Promise.all(pages.map((p) => epochLag(p, network)))).forEach((l, tab) => lags.push({ at, tab, ...l }));
      const counts = await Promise.all(pages.map((p) => p.evaluate(() => window.webtensor.ledger.gossip!.rejected)));
      verdicts.push({ at: Date.now() - t0, rejected: counts });
      await sleep(1000);
    }
  })();
  const report = await adversary.flood(25_000);
  const floodEnd = Date.now() - t0;
  const atFloodEnd = await Promise.all(pages.map((p) => epochLag(p, network)));
  const closedAtFloodEnd = Math.min(...atFloodEnd.map((l) => l.closed));
  atFloodEnd.forEach((l, tab) => lags.push({ at: floodEnd, tab, ...l }));
  const duringFlood = lags.filter((l) => l.at < floodEnd).length;
  console.log(
    `flood: ${report.sent} junk messages in ${report.ms} ms (${Math.round((report.sent * 1000) / report.ms)}/s), ` +
      `${report.delivered} deliveries to tabs; by kind ${JSON.stringify(report.byKind)}`,
  );

  // After it: its sync still offers all of it for a while; the tabs go on closing epochs.
  await expect
    .poll(async () => Math.min(...(await Promise.all(pages.map((p) => epochLag(p, network)))).map((l) => l.closed)), {
      timeout: 60_000,
      message: 'every tab closes an epoch after the flood',
    })
    .toBeGreaterThan(closedAtFloodEnd);
  await sleep(5000); // a sync round or two more with the adversary, if it is still connected
  sampling = false;
  await sampler;

  const junkIds = report.junk.map((j) => j.id);
  for (const [k, p] of pages.entries()) {
    const tab = `tab ${k}`;
    // No junk record is stored, nor replayed (a stored record is replayed: taken, or refused by the replay).
    expect(await heldBy(p, junkIds), tab).toEqual([]);
    const replayedJunk = await p.evaluate((ids) => {
      const refused = window.webtensor.ledger.debug.refused();
      return ids.filter((id) => id in refused);
    }, junkIds);
    expect(replayedJunk, tab).toEqual([]);
    // Of each over-quota author's claims in one block, at most the quota is stored.
    const quotaHeld = new Set(
      await heldBy(
        p,
        report.overQuota.flatMap((q) => q.ids),
      ),
    );
    for (const q of report.overQuota)
      expect(q.ids.filter((id) => quotaHeld.has(id)).length, tab).toBeLessThanOrEqual(RECORDS_PER_AUTHOR_PER_BLOCK);
  }

  // Every tab hung up on it for its score: the tab counts the hang-up, and the adversary saw the connection close.
  const after = await Promise.all(pages.map((p) => p.evaluate(() => window.webtensor.ledger.gossip!)));
  const perTab = after.map((a, k) => ({
    rejected: a.rejected - before[k]!.rejected,
    ignored: a.ignored - before[k]!.ignored,
    accepted: a.accepted - before[k]!.accepted,
    hangUps: a.dropped - before[k]!.dropped,
    closed: adversary.closedConnections.get(tabIds[k]!) ?? 0,
    opened: adversary.openedConnections.get(tabIds[k]!),
  }));
  console.log(`per tab: ${JSON.stringify(perTab)}`);
  console.log(
    `tabs the adversary was connected to, each second: ${connections.map((c) => c.connected).join('')}; ` +
      `rejections by tab over time: ${verdicts.map((v) => `${Math.round(v.at / 1000)}s:${v.rejected.join('/')}`).join(' ')}`,
  );
  for (const [k, t] of perTab.entries()) {
    expect(t.hangUps, `tab ${k} hung up on the flooder`).toBeGreaterThanOrEqual(1);
    expect(t.closed, `tab ${k}'s connection to the flooder closed`).toBeGreaterThanOrEqual(1);
  }
  // A peer hung up on for its score stays away: each tab bans it (core/peer-bans.ts; gossipsub alone would take it
  // back with a fresh score), so by the end of the flood it holds no connection to any tab.
  await expect
    .poll(() => adversary.connectedTo(tabIds).length, {
      timeout: 15_000,
      message: 'tabs still connected to the flooder',
    })
    .toBe(0);

  // The tabs closed epochs on time throughout (at most one epoch behind what the clock allows).
  const worst = Math.max(...lags.filter((l) => l.closed >= 0).map((l) => l.lag));
  console.log(
    `epochs: worst lag ${worst} epochs over ${lags.length} samples (${duringFlood} during the flood); ` +
      `closed at the flood's end ${closedAtFloodEnd}, at the last sample ${Math.min(...lags.slice(-3).map((l) => l.closed))}`,
  );
  expect(duringFlood, 'samples of the tabs taken during the flood').toBeGreaterThan(0);
  expect(worst).toBeLessThanOrEqual(1);
  for (const t of tabs) expect(t.errors).toEqual([]);
});

test('sixteen identities registering at once take at most maxPerBlock a block, pay a rising burn and evict no immune UID', async ({
  browser,
}) => {
  const network = testProfile(Math.ceil(Date.now() / 1000) * 1000 + 3000);
  const immunityPeriod = 6;
  network.subnets[0] = {
    ...network.subnets[0]!,
    maxUids: 3,
    maxValidators: 2,
    immunityPeriod,
    registration: { ...network.subnets[0]!.registration, maxPerBlock: 1, targetPerEpoch: 2 },
  };
  const cfg = network.subnets[0]!;
  const { maxPerBlock, targetPerEpoch: target, minBurn, maxBurn } = cfg.registration;
  const tempo = cfg.tempo;
  const relay = await relayFor('sybils', network, 9966);
  // A subnet full of honest miners, opened together: with one registration a block, those that register in the
  // same block are refused `registration-limit` and send their registration again (core/services/registration.ts).
  const subnetOrNull = (p: Page) => p.evaluate(() => window.webtensor.ledger.subnets[0] ?? null);
  const subnetOf = async (p: Page) => (await subnetOrNull(p))!;
  const opened = await tabsOn(browser, relay, cfg.maxUids, 'miner');
  const tabs: Tab[] = opened.tabs;
  const honest: string[] = opened.ids;
  const pages = tabs.map((t) => t.page);
  for (const p of pages)
    await expect
      // (A tab that has not replayed yet has no subnet view.)
      .poll(async () => ((await subnetOrNull(p))?.uids.map((u) => u.hotkey) ?? []).sort(), {
        timeout: 120_000,
        message: 'the honest miners register',
      })
      .toEqual([...honest].sort());
  const honestAt = Object.fromEntries((await subnetOf(pages[0]!)).uids.map((u) => [u.hotkey, u.registeredAt]));
  expect(Object.keys(honestAt).sort()).toEqual([...honest].sort());

  const adversary = await adversaryOn('sybils', relay);
  await expect
    .poll(() => adversary.holders(1).sort(), { timeout: 60_000, message: 'the adversary sees the honest UIDs' })
    .toEqual([...honest].sort());
  const sybils = await adversary.sybils(16);
  await adversary.fund(sybils, BigInt(maxBurn), 30_000);

  // Watch every tab's subnet while the sybils register: each UID's holders, and the burn at each close.
  const views: SubnetView[][] = pages.map(() => []);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const [k, p] of pages.entries()) views[k]!.push(await subnetOf(p));
      await sleep(500);
    }
  })();
  const started = Date.now();
  const attempts = await adversary.registerAll(sybils, 1, maxPerBlock + 1, Date.now() + 120_000);
  const lastBlock = Math.max(...attempts.map((a) => a.block));
  const taken = attempts.filter((a) => a.outcome === 'registered');
  console.log(
    `sybils: ${attempts.length} registrations signed over blocks ${attempts[0]?.block}-${lastBlock} in ` +
      `${Date.now() - started} ms; ${new Set(taken.map((a) => a.author)).size} of 16 identities taken ` +
      `(the adversary's own replay)`,
  );
  // Let every tab close the epoch of the last registration, and one more.
  const through = Math.floor(lastBlock / tempo) + 1;
  for (const p of pages)
    await expect
      .poll(async () => (await subnetOf(p)).epoch, { timeout: 90_000, message: 'tabs close the epochs' })
      .toBeGreaterThan(through);
  sampling = false;
  await sampler;
  for (const [k, p] of pages.entries()) views[k]!.push(await subnetOf(p));

  // What each tab's replay took: stored and not refused.
  const outcomes = async (p: Page) => {
    const ids = attempts.map((a) => a.id);
    const held = new Set(await heldBy(p, ids));
    const refused = await p.evaluate((ids) => {
      const r = window.webtensor.ledger.debug.refused();
      return ids.map((id) => r[id]?.code ?? null);
    }, ids);
    return attempts.map((a, k) => (held.has(a.id) ? (refused[k] ?? 'registered') : 'missing'));
  };
  // Records reach tabs at different times (sync repairs what gossip missed): wait until every tab holds every
  // attempt and all agree on each one's outcome.
  const agreed = async () => {
    const all = (await Promise.all(pages.map(outcomes))).map((o) => JSON.stringify(o));
    return all.every((o) => o === all[0]) && !all[0]!.includes('missing');
  };
  await expect.poll(agreed, { timeout: 90_000, message: 'every tab holds every attempt, with one outcome' }).toBe(true);
  const reference = await outcomes(pages[0]!);
  const accepted = attempts.filter((_, k) => reference[k] === 'registered');
  const codes: Record<string, number> = {};
  for (const c of reference) codes[c] = (codes[c] ?? 0) + 1;
  console.log(`tabs' replays of the sybils' registrations: ${JSON.stringify(codes)}`);

  // At most maxPerBlock a block, and the limit was met (the adversary tried one more at each block).
  const perBlock = new Map<number, number>();
  for (const a of accepted) perBlock.set(a.block, (perBlock.get(a.block) ?? 0) + 1);
  expect(Math.max(...perBlock.values())).toBeLessThanOrEqual(maxPerBlock);
  expect(codes['registration-limit'] ?? 0).toBeGreaterThan(0);

  // The burn at each close follows the price rule over the registrations each epoch took, and rose after an epoch
  // over target: read from each tab's epoch summaries (what its final replay closed each epoch with), and the
  // registrations there are the ones the tabs agreed on above (the sybils' and the honest miners').
  const regsIn = (epoch: number) =>
    accepted.filter((a) => Math.floor(a.block / tempo) === epoch).length +
    Object.values(honestAt).filter((b) => Math.floor(b / tempo) === epoch).length;
  const closesOf = (p: Page) =>
    p.evaluate(() =>
      window.webtensor.ledger.summaries.map((e) => ({ epoch: e.epoch, registrations: e.registrations, burn: e.burn })),
    );
  for (const [k, p] of pages.entries()) {
    // A record stored but not replayed yet shows no refusal above: wait for the replay that counts every one.
    await expect
      .poll(async () => (await closesOf(p)).map((c) => c.registrations), {
        timeout: 30_000,
        message: `tab ${k}: registrations per epoch`,
      })
      .toEqual((await closesOf(p)).map((c) => regsIn(c.epoch)));
    const closes = await closesOf(p);
    let burn = BigInt(minBurn);
    let rose = false;
    for (const close of closes) {
      expect(close.registrations, `tab ${k}: registrations in epoch ${close.epoch}`).toBe(regsIn(close.epoch));
      let expected = (burn * BigInt(close.registrations + target)) / BigInt(2 * target);
      if (expected < BigInt(minBurn)) expected = BigInt(minBurn);
      if (expected > BigInt(maxBurn)) expected = BigInt(maxBurn);
      expect(BigInt(close.burn), `tab ${k}: the burn after epoch ${close.epoch}`).toBe(expected);
      if (close.registrations > target && expected > burn) rose = true;
      burn = expected;
    }
    console.log(`tab ${k}: burn by epoch ${JSON.stringify(closes.map((c) => `${c.epoch}:${c.burn}`))}`);
    expect(rose, `tab ${k}: the burn rose after an epoch over target`).toBe(true);
  }

  // Nobody was evicted while immune. The subnet was full of honest miners when the sybils began, so each sybil
  // registration the final replay kept took a UID from someone: the first can only come once the oldest honest
  // miner's immunity ended, and while every UID was immune the rest were refused as subnet-full. (Judged from the
  // final replay: views sampled during the run can be reordered by a record that arrived late.)
  const firstEvictable = Math.min(...Object.values(honestAt)) + immunityPeriod;
  for (const a of accepted)
    expect(a.block, `a sybil registration at block ${a.block} evicted an immune UID`).toBeGreaterThanOrEqual(
      firstEvictable,
    );
  expect(codes['subnet-full'] ?? 0, 'registrations refused while every UID was immune').toBeGreaterThan(0);
  // Honest miners evicted: no more than the rules allow (maxPerBlock in each block that took registrations).
  const final = views[0]!.at(-1)!;
  const evicted = honest.filter((h) => !final.uids.some((u) => u.hotkey === h));
  console.log(`honest miners evicted: ${evicted.length} of ${honest.length}, over ${perBlock.size} blocks`);
  expect(evicted.length).toBeLessThanOrEqual(Math.min(honest.length, maxPerBlock * perBlock.size));

  // Every tab reports the same state: the same checkpoints (records and state roots) and the same UIDs.
  const roots = (p: Page) =>
    p.evaluate(
      (upTo) =>
        window.webtensor.ledger.epochs
          .filter((e) => e.epoch <= upTo)
          .map((e) => `${e.epoch}:${e.recordsRoot}:${e.stateRoot}`),
      through,
    );
  const rootsRef = await roots(pages[0]!);
  expect(rootsRef.length).toBeGreaterThanOrEqual(through);
  const holders = async (p: Page) => (await subnetOf(p)).uids;
  const holdersRef = await holders(pages[0]!);
  for (const p of pages.slice(1)) {
    await expect.poll(() => roots(p), { timeout: 30_000 }).toEqual(rootsRef);
    await expect.poll(() => holders(p), { timeout: 30_000 }).toEqual(holdersRef);
  }
  for (const t of tabs) expect(t.errors).toEqual([]);
});
