/**
 * Tabs in separate browser contexts form a full mesh of direct WebRTC connections through a real relay; RPC
 * works between every pair, gossip reaches every tab, the mesh survives the relay going away, and garbage from
 * one tab gets typed errors while the others keep working.
 */
import { expect, test } from '@playwright/test';
import { RelayProcess } from '../relay/testing/relay-process.ts';
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

// On a failure, what every tab's connections looked like, and its last console lines.
// eslint-disable-next-line no-empty-pattern
test.afterEach(async ({}, info) => {
  if (info.status === info.expectedStatus) return;
  for (const [k, t] of tabs.entries()) {
    const view = await t.page
      .evaluate(() => ({ peers: window.webtensor.peers, connectivity: window.webtensor.debug.connectivity() }))
      .catch((e: Error) => e.message);
    console.log(`--- tab ${k}: ${JSON.stringify(view)}\n${t.console.slice(-40).join('\n')}`);
  }
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

test('an RPC round trip works between every ordered pair, with streamed chunks', async () => {
  const ids = await peerIds();
  for (const [a, t] of tabs.entries()) {
    const results = await t.page.evaluate(
      async (others) => Promise.all(others.map((peer) => window.webtensor.rpc(peer, 'node.echo', { hello: peer }))),
      ids.filter((_, b) => b !== a),
    );
    expect(results).toEqual(ids.filter((_, b) => b !== a).map((peer) => ({ hello: peer })));
  }
  // Many calls to one peer: each exchange must close its stream, or the peer's inbound stream limit bites.
  const many = await tabs[0]!.page.evaluate(async (peer) => {
    let ok = 0;
    for (let k = 0; k < 100; k++) if ((await window.webtensor.rpc(peer, 'node.echo', k)) === k) ok++;
    return ok;
  }, ids[1]!);
  expect(many).toBe(100);
  const info = await tabs[0]!.page.evaluate((peer) => window.webtensor.rpc(peer, 'node.info', null), ids[1]!);
  expect(info).toMatchObject({ peerId: ids[1] });
});

test('a gossip message reaches every tab', async () => {
  const text = `hello from tab 0 at ${Date.now()}`;
  await tabs[0]!.page.evaluate((t) => window.webtensor.publish(t), text);
  for (const t of tabs.slice(1)) {
    await expect
      .poll(() => t.page.evaluate(() => window.webtensor.messages.map((m) => m.text)), { timeout: 15_000 })
      .toContain(text);
  }
});

test('garbage from one tab gets typed errors and changes nothing; the others keep working', async () => {
  const ids = await peerIds();
  const attacker = tabs[0]!.page;
  const target = ids[1]!;
  const send = (frames: (string | { zeroBytes: number })[], id: string) =>
    attacker.evaluate(([p, f, i]) => window.webtensor.debug.sendFrames(p, f, i), [target, frames, id] as const);

  expect(await send([{ zeroBytes: 70_000 }], 'unknown')).toMatchObject({ ok: false, code: 'too-large' });
  expect(await send(['{"t":"req",'], 'unknown')).toMatchObject({ ok: false, code: 'bad-frame' });
  const signed = await attacker.evaluate(() => window.webtensor.debug.signedRequest('node.echo', 'once'));
  const unsigned = { ...signed, id: `${signed.id}x`, sig: 'AAAA' };
  expect(await send([JSON.stringify(unsigned)], unsigned.id)).toMatchObject({ ok: false, code: 'bad-signature' });
  expect(await send([JSON.stringify(signed)], signed.id)).toEqual({ ok: true, result: 'once' });
  expect(await send([JSON.stringify(signed)], signed.id)).toMatchObject({ ok: false, code: 'replay' });

  // The target counted the garbage against the attacker, and still serves everyone, the attacker included.
  const refused = await tabs[1]!.page.evaluate(() => window.webtensor.refused);
  expect(refused[ids[0]!]).toBe(4);
  for (const t of tabs) expect(await t.page.evaluate(() => window.webtensor.status)).toBe('running');
  expect(await tabs[2]!.page.evaluate((p) => window.webtensor.rpc(p, 'node.echo', 'still here'), target)).toBe(
    'still here',
  );
  expect(await attacker.evaluate((p) => window.webtensor.rpc(p, 'node.echo', 'ok'), target)).toBe('ok');
});

test('when the relay goes away, direct connections keep working; when it returns, every tab re-reserves within 10 s', async () => {
  const ids = await peerIds();
  await relay.stop();
  for (const t of tabs)
    await expect.poll(() => t.page.evaluate(() => window.webtensor.relay.connected), { timeout: 15_000 }).toBe(false);
  // Tab to tab traffic does not need the relay.
  for (const [a, t] of tabs.entries()) {
    const b = (a + 1) % TABS;
    expect(await t.page.evaluate((p) => window.webtensor.rpc(p, 'node.echo', 'no relay'), ids[b]!)).toBe('no relay');
  }
  await relay.start();
  const restarted = Date.now();
  for (const t of tabs)
    await expect.poll(() => t.page.evaluate(() => window.webtensor.relay.reserved), { timeout: 10_000 }).toBe(true);
  expect(Date.now() - restarted).toBeLessThan(10_000);
  for (const t of tabs)
    expect(await t.page.evaluate(() => window.webtensor.peers.filter((p) => p.direct).length)).toBe(TABS - 1);
});

test('a tab that closes disappears from its peers within a few seconds; no page errors anywhere', async () => {
  const ids = await peerIds();
  const leaving = tabs.pop()!;
  await leaving.context.close();
  for (const t of tabs) {
    await expect
      .poll(() => t.page.evaluate(() => window.webtensor.peers.map((p) => p.peerId)), { timeout: 10_000 })
      .not.toContain(ids[TABS - 1]);
  }
  for (const t of tabs) expect(t.errors).toEqual([]);
  await tabs[0]!.page.setViewportSize({ width: 1280, height: 800 });
  await tabs[0]!.page.screenshot({ path: test.info().outputPath('mesh-tab-1280.png'), fullPage: true });
  await tabs[0]!.page.setViewportSize({ width: 375, height: 812 });
  await tabs[0]!.page.screenshot({ path: test.info().outputPath('mesh-tab-375.png'), fullPage: true });
});
