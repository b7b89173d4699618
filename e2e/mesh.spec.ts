/**
 * Tabs in separate browser contexts form a full mesh of direct WebRTC connections through a real relay; RPC
 * works between every pair, gossip reaches every tab, the mesh survives the relay going away, and garbage from
 * one tab gets typed errors while the others keep working.
 */
import { expect, test } from '@playwright/test';
import { RelayProcess } from './support/relay.ts';
import { openTabs, selectedPairTypes, type Tab } from './support/tabs.ts';

const TABS = Number(process.env['MESH_TABS'] ?? 6);
const relay = new RelayProcess();
let tabs: Tab[] = [];

test.describe.configure({ mode: 'serial' });
test.setTimeout(180_000);

test.beforeAll(async ({ browser }) => {
  await relay.start();
  tabs = await openTabs(browser, TABS, relay.healthUrl);
});

test.afterAll(async () => {
  for (const t of tabs) await t.context.close();
  await relay.stop();
});

const peerIds = () => Promise.all(tabs.map((t) => t.page.evaluate(() => window.webtensor.peerId!)));

test('every tab reserves a slot on the relay', async () => {
  await Promise.all(tabs.map((t) => t.page.evaluate(() => window.webtensor.ready)));
  for (const t of tabs) expect(await t.page.evaluate(() => window.webtensor.relay.reserved)).toBe(true);
  expect(new Set(await peerIds()).size).toBe(TABS);
});

test('they form a full mesh of direct WebRTC connections over host candidates', async () => {
  for (const t of tabs) {
    await expect
      .poll(() => t.page.evaluate(() => window.webtensor.peers.filter((p) => p.direct).length), { timeout: 60_000 })
      .toBe(TABS - 1);
  }
  for (const t of tabs) {
    const pairs = await selectedPairTypes(t.page);
    expect(pairs.length).toBeGreaterThanOrEqual(TABS - 1);
    // Local side is always a host candidate. The remote side is "host", or "prflx" when the connectivity check
    // arrived before the trickled candidate: the same direct address. Never "relay" (TURN) on either side.
    for (const p of pairs) expect(p).toMatch(/^host\/(host|prflx)$/);
  }
});
