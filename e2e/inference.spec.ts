/**
 * Real inference in a Chromium worker, offline: stories260K from ../shared/models, served by our own server and
 * verified against its catalogue hashes, produces its known greedy story, identically in two separate tabs.
 */
import { expect, test } from '@playwright/test';

test('stories260K generates its known greedy text, identically in two browser contexts', async ({ browser }) => {
  const outputs = [];
  for (let k = 0; k < 2; k++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const offsite: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith('http://127.0.0.1:4173/') && !r.url().startsWith('blob:') && !r.url().startsWith('data:'))
        offsite.push(r.url());
    });
    await page.goto('/');
    const loaded = await page.evaluate(() => window.webtensor.inference.load('karpathy/stories260K'));
    expect(loaded.device).toBe('wasm');
    const out = await page.evaluate(() => window.webtensor.inference.generate('Once upon a time', 32));
    expect(out.text).toContain('there was a little girl named Lily');
    expect(out.tokenIds).toHaveLength(32);
    expect(errors).toEqual([]);
    expect(offsite).toEqual([]); // no CDN, no hub: everything came from our server
    outputs.push(out.tokenIds);
    await context.close();
  }
  expect(outputs[1]).toEqual(outputs[0]);
});

test('a model that is not in the catalogue is refused with a sentence', async ({ page }) => {
  await page.goto('/');
  const err = await page.evaluate(() =>
    window.webtensor.inference.load('someone/else').then(
      () => null,
      (e: Error) => e.message,
    ),
  );
  expect(err).toContain('not in the model catalogue');
});
