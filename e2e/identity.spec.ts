/**
 * One node per tab: identity slots survive reloads, two tabs of one browser are two nodes, and a key exported
 * from one tab can be imported into another, which becomes that identity after a reload.
 */
import { readFileSync } from 'node:fs';
import { expect, test } from '@playwright/test';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { webrtcPermissions } from '../scripts/chromium.ts';

const relay = new RelayProcess(9390, 9391);
test.beforeAll(() => relay.start());
test.afterAll(() => relay.stop());

const url = () => `/?autostart=1&role=client&relay=${encodeURIComponent(relay.healthUrl)}`;

test('reloading keeps the peer id; a second tab of the same browser is another node', async ({ browser }) => {
  const context = await browser.newContext({ permissions: webrtcPermissions });
  const first = await context.newPage();
  await first.goto(url());
  await first.evaluate(() => window.webtensor.ready);
  const { peerId, slot } = await first.evaluate(() => ({
    peerId: window.webtensor.peerId,
    slot: window.webtensor.slot,
  }));
  expect(slot).toBe(0);

  const second = await context.newPage();
  await second.goto(url());
  await second.evaluate(() => window.webtensor.ready);
  const other = await second.evaluate(() => ({ peerId: window.webtensor.peerId, slot: window.webtensor.slot }));
  expect(other.slot).toBe(1);
  expect(other.peerId).not.toBe(peerId);

  await first.reload();
  await first.evaluate(() => window.webtensor.ready);
  expect(await first.evaluate(() => ({ peerId: window.webtensor.peerId, slot: window.webtensor.slot }))).toEqual({
    peerId,
    slot,
  });
  // The two tabs of one browser reach each other like any two nodes: directly, over WebRTC.
  await expect
    .poll(() => second.evaluate(() => window.webtensor.peers.filter((p) => p.direct).length), { timeout: 30_000 })
    .toBe(1);
  await context.close();
});

test('a key exported from one browser becomes the identity of another after import and reload', async ({ browser }) => {
  const a = await browser.newContext({ permissions: webrtcPermissions, acceptDownloads: true });
  const pageA = await a.newPage();
  await pageA.goto(url());
  await pageA.evaluate(() => window.webtensor.ready);
  const idA = await pageA.evaluate(() => window.webtensor.peerId!);
  const [download] = await Promise.all([
    pageA.waitForEvent('download'),
    pageA.getByRole('button', { name: 'export key' }).click(),
  ]);
  const keyBytes = readFileSync(await download.path()); // the file goes away with its context
  await a.close();

  const b = await browser.newContext({ permissions: webrtcPermissions });
  const pageB = await b.newPage();
  await pageB.goto(url());
  await pageB.evaluate(() => window.webtensor.ready);
  expect(await pageB.evaluate(() => window.webtensor.peerId)).not.toBe(idA);

  // A file that is not a key is refused with a sentence, and changes nothing.
  await pageB
    .locator('input[type=file]')
    .setInputFiles({ name: 'junk.key', mimeType: 'application/octet-stream', buffer: Buffer.from('not a key') });
  await expect(pageB.getByText('That file is not a webtensor key')).toBeVisible();
  await pageB.reload();
  await pageB.evaluate(() => window.webtensor.ready);
  expect(await pageB.evaluate(() => window.webtensor.peerId)).not.toBe(idA);

  await pageB
    .locator('input[type=file]')
    .setInputFiles({ name: 'mine.key', mimeType: 'application/octet-stream', buffer: keyBytes });
  await expect(pageB.getByText('Reload the page to become')).toBeVisible();
  await pageB.reload();
  await pageB.evaluate(() => window.webtensor.ready);
  expect(await pageB.evaluate(() => window.webtensor.peerId)).toBe(idA);
  await b.close();
});
