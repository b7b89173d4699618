/**
 * The four pages against a live network (test profile): relay + 2 miners + 1 validator + 1 dashboard tab, each in
 * its own browser context. The dashboard shows every UID with the automation API's values, its charts render
 * with data once an epoch has closed, Ask streams an answer from a remote miner, no tab logs an error, and
 * screenshots of every page at 1280x800 and 375x812 are saved with the test's results.
 */
import { webrtcPermissions } from '../scripts/chromium.ts';
import { expect, test, type Page } from '@playwright/test';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { openTabs, expectUids } from './support/tabs.ts';

const relay = new RelayProcess(9894, 9895, undefined, ['--network', 'test']);
test.beforeAll(() => relay.start());
test.afterAll(() => relay.stop());
test.setTimeout(360_000);

async function screenshots(page: Page, name: string) {
  for (const [w, h] of [
    [1280, 800],
    [375, 812],
  ] as const) {
    await page.setViewportSize({ width: w, height: h });
    await page.waitForTimeout(300); // charts follow their box's size
    await page.screenshot({ path: test.info().outputPath(`${name}-${w}x${h}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

test('Mine, Validate, Dashboard and Ask work against a live network', async ({ browser }) => {
  const tabs = await openTabs(browser, 4, relay.healthUrl, undefined, (k) =>
    k < 2 ? 'role=miner' : k === 2 ? 'role=validator' : 'role=client',
  );
  const consoleErrors: string[] = [];
  tabs.forEach((t, k) =>
    t.page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(`tab ${k}: ${m.text()}`);
    }),
  );
  const [minerA, , validator, watcher] = tabs.map((t) => t.page) as [Page, Page, Page, Page];
  await Promise.all(tabs.map((t) => t.page.evaluate(() => window.webtensor.ready)));
  await expectUids(tabs.slice(0, 3));
  const v = await validator.evaluate(() => window.webtensor.peerId!);
  await validator.evaluate((id) => window.webtensor.ledger.faucetStake(id, '1000000000000'), v);
  await expect.poll(() => validator.evaluate(() => window.webtensor.ledger.stake), { timeout: 30_000 }).not.toBe('0');

  // The dashboard tab navigates by its links (no reload: the same node keeps running).
  await watcher.getByRole('link', { name: 'Dashboard' }).click();
  await expect(watcher.getByRole('heading', { name: 'Dashboard' })).toBeVisible();
  await expect
    .poll(
      () =>
        watcher.evaluate(() => {
          const last = window.webtensor.ledger.summaries.at(-1);
          return last ? last.uids.filter((u) => u.dividends > 0 || u.incentive > 0).length : 0;
        }),
      { timeout: 150_000, intervals: [2000] },
    )
    .toBeGreaterThanOrEqual(3);

  // Every UID is in the metagraph table with the values the automation API reports for the last epoch.
  await expect
    .poll(
      async () => {
        const last = await watcher.evaluate(() => window.webtensor.ledger.summaries.at(-1)!);
        const table = await watcher.locator('[data-testid="metagraph"] tbody tr').evaluateAll((trs) =>
          trs.map((tr) => {
            const cell = (c: string) => tr.querySelector(`[data-col="${c}"]`)!.textContent;
            return `${cell('uid')} ${cell('incentive')} ${cell('dividends')} ${cell('consensus')} ${cell('validatorTrust')}`;
          }),
        );
        const api = last.uids.map(
          (u) =>
            `${u.uid} ${(u.incentive / 65535).toFixed(3)} ${(u.dividends / 65535).toFixed(3)} ${(u.consensus / 65535).toFixed(3)} ${(u.validatorTrust / 65535).toFixed(3)}`,
        );
        return JSON.stringify(table) === JSON.stringify(api)
          ? 'equal'
          : `${JSON.stringify(table)} vs ${JSON.stringify(api)}`;
      },
      { timeout: 30_000 },
    )
    .toBe('equal');
  // Charts have data: each is drawn on a canvas, from the epochs the dashboard read.
  for (const label of [
    'incentive per UID',
    'dividends per UID',
    'total stake',
    'emission per epoch',
    'weights heatmap',
    'peer graph',
  ])
    await expect(watcher.locator(`[data-chart="${label}"] canvas`).first()).toBeVisible();
  expect(Number(await watcher.locator('.chart-grid').getAttribute('data-epochs'))).toBeGreaterThan(0);
  await expect(watcher.getByTestId('records').locator('tbody tr').first()).toBeVisible();
  await screenshots(watcher, 'dashboard');

  // Sorting and filtering the metagraph.
  await watcher.getByRole('button', { name: /^incentive/ }).click();
  await watcher.getByRole('button', { name: /^incentive/ }).click();
  const firstUid = await watcher.locator('[data-testid="metagraph"] tbody tr').first().getAttribute('data-uid');
  const best = await watcher.evaluate(() => {
    const last = window.webtensor.ledger.summaries.at(-1)!;
    return Math.max(...last.uids.map((u) => u.incentive));
  });
  const bestUids = await watcher.evaluate(
    (b) =>
      window.webtensor.ledger.summaries
        .at(-1)!
        .uids.filter((u) => u.incentive === b)
        .map((u) => String(u.uid)),
    best,
  );
  expect(bestUids).toContain(firstUid);
  await watcher.getByLabel('Filter').fill('validator');
  await expect(watcher.locator('[data-testid="metagraph"] tbody tr')).toHaveCount(1);
  await watcher.getByLabel('Filter').fill('');

  // Ask, from the tab that runs no model: the answer streams in from a miner, with who served it and how fast.
  await watcher.getByRole('link', { name: 'Ask' }).click();
  await watcher.getByLabel('What should the network continue?').fill('A little cat');
  await watcher.getByRole('button', { name: 'Ask' }).click();
  await expect(watcher.getByTestId('answer-facts')).toContainText('tokens/s', { timeout: 30_000 });
  await expect(watcher.getByTestId('answer-facts')).toContainText('uid');
  const answer = (await watcher.getByTestId('answer').textContent())!;
  expect(answer.length).toBeGreaterThan('A little cat'.length + 5);
  expect(await watcher.evaluate(() => window.webtensor.miner.model)).toBeNull(); // it served nothing itself
  await screenshots(watcher, 'ask');

  // The validator's page: its loop, scores and weights.
  await validator.getByRole('link', { name: 'Validate' }).click();
  await expect(validator.getByTestId('validator-scores').locator('tbody tr')).toHaveCount(2);
  await expect(validator.getByTestId('validator')).toContainText('epoch');
  await screenshots(validator, 'validate');

  // The miner's page.
  await expect(minerA.getByTestId('miner')).toContainText('serving the network');
  await expect(minerA.getByTestId('ledger')).toContainText('UID');
  await screenshots(minerA, 'mine');

  // A newcomer's first screen: one Start button, nothing running yet.
  const fresh = await browser.newContext();
  const first = await fresh.newPage();
  await first.goto(`/?relay=${encodeURIComponent(relay.healthUrl)}`);
  await expect(first.getByRole('button', { name: 'Start', exact: true })).toBeVisible();
  await screenshots(first, 'first-run');
  await fresh.close();

  // A newcomer who opens the dashboard or Ask directly (no autostart, no button) joins as a watcher on its own:
  // the metagraph fills in with amounts in τ, and Ask answers.
  const watching = await browser.newContext({ permissions: webrtcPermissions });
  const dash = await watching.newPage();
  const dashErrors: string[] = [];
  dash.on('pageerror', (e) => dashErrors.push(e.message));
  await dash.goto(`/dashboard?relay=${encodeURIComponent(relay.healthUrl)}`);
  await expect(dash.getByTestId('status-bar')).toContainText('relay: connected', { timeout: 30_000 });
  await expect(dash.locator('[data-testid="metagraph"] tbody tr')).toHaveCount(3, { timeout: 60_000 });
  await expect(dash.locator('[data-testid="metagraph"] [data-col="stake"]').first()).toContainText('τ');
  expect(await dash.evaluate(() => window.webtensor.status)).toBe('running');
  const ask = await watching.newPage();
  await ask.goto(`/ask?relay=${encodeURIComponent(relay.healthUrl)}`);
  await expect(ask.getByRole('button', { name: 'Ask' })).toBeEnabled({ timeout: 30_000 });
  await expect
    .poll(() => ask.evaluate(() => window.webtensor.peers.filter((p) => p.direct).length), { timeout: 60_000 })
    .toBeGreaterThanOrEqual(2);
  await ask.getByRole('button', { name: 'Ask' }).click();
  await expect(ask.getByTestId('answer-facts')).toContainText('tokens/s', { timeout: 30_000 });
  expect(dashErrors).toEqual([]);
  await watching.close();

  expect(consoleErrors).toEqual([]);
  for (const t of tabs) expect(t.errors).toEqual([]);
  for (const t of tabs) await t.context.close();
});
