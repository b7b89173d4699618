/**
 * The consensus engine in a real Chromium Web Worker computes the same bits as Node, for every public vector
 * case, and the Consensus Lab page shows a real epoch.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { parseCase, runCase } from '../shared/yuma/index.ts';

const sharedDir = process.env['WEBTENSOR_SHARED'] ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../shared');
const vectors = JSON.parse(readFileSync(resolve(sharedDir, 'yuma/vectors.json'), 'utf8')) as { name: string }[];

test('every vector case: Chromium worker output equals Node output bit for bit', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto('/lab');
  await page.waitForFunction(() => window.webtensor !== undefined);
  for (const c of vectors) {
    for (const replay of [false, true]) {
      const browser = await page.evaluate(
        async ([data, replay]) => {
          const out = await window.webtensor.yuma.runCase(data, { replay });
          // bigints do not cross evaluate(); serialise them as exact digit strings here.
          return JSON.stringify(out, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
        },
        [c, replay] as const,
      );
      const node = JSON.stringify(runCase(parseCase(c), { replay }), (_k, v: unknown) =>
        typeof v === 'bigint' ? `${v}n` : v,
      );
      expect(browser, `${c.name} replay=${replay}`).toBe(node);
    }
  }
  // A sanity anchor that does not depend on the engine agreeing with itself: a literal subtensor number.
  const seq = vectors.find((c) => c.name === 'yuma1_test_bonds_ema_sequence')!;
  const first = await page.evaluate(async (data) => {
    const out = await window.webtensor.yuma.runCase(data);
    return 'epochs' in out ? out.epochs[0]!.bonds_u16[2]![4] : -1;
  }, seq);
  expect(first).toBe(49151);
  expect(errors).toEqual([]);
});

test('the Consensus Lab runs the cabal example and reports bad input as a sentence', async ({ page }) => {
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto('/lab');
  await page.getByRole('button', { name: 'Run epoch' }).click();
  const table = page.getByTestId('metagraph');
  await expect(table.locator('tbody tr')).toHaveCount(7);
  // The cabal's miner (uid 6) is clipped to consensus: its incentive stays far below the honest top miner's.
  const incentive = async (uid: number) =>
    parseFloat(await table.locator('tbody tr').nth(uid).locator('td').nth(2).innerText());
  expect(await incentive(6)).toBeLessThan(await incentive(3));
  await page.screenshot({ path: test.info().outputPath('consensus-lab-1280.png'), fullPage: true });

  await page.getByLabel('Epoch case (JSON)').fill('{"kind": "epoch", "name": "x"}');
  await page.getByRole('button', { name: 'Run epoch' }).click();
  await expect(page.getByRole('alert')).toContainText('params');
  await page.setViewportSize({ width: 375, height: 812 });
  await page.screenshot({ path: test.info().outputPath('consensus-lab-375.png'), fullPage: true });
});
