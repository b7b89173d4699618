/**
 * Hub models: downloaded with progress and checked against the hashes the hub publishes. These machines cannot
 * reach huggingface.co, so the test points the page (`?hub=`) at a local server that speaks the hub's tree and
 * download endpoints and serves the generated model's files under a hub repository name.
 */
import { expect, test } from '@playwright/test';
import { startHubServer } from './support/hub-server.ts';

let hub: { url: string; stop(): void };
test.beforeAll(async () => {
  hub = await startHubServer(9797, {
    'Xenova/llama2.c-stories15M': { weights: 'onnx/model.onnx' },
    'onnx-community/SmolLM2-135M-Instruct': {
      weights: 'onnx/model_quantized.onnx',
      corrupt: 'onnx/model_quantized.onnx',
    },
  });
});
test.afterAll(() => hub.stop());

test('a hub model downloads with progress, is checked file by file, and runs', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`/?hub=${encodeURIComponent(hub.url)}`);
  const got = await page.evaluate(() => window.webtensor.inference.loadWithProgress('Xenova/llama2.c-stories15M'));
  expect(got.phases).toEqual(expect.arrayContaining(['download', 'verify']));
  expect(got.downloadedBytes).toBeGreaterThan(600_000); // the weights came over the wire, with progress
  // The downloaded files are the generated model's: greedy ids equal those of the copy our server serves.
  const fromHub = await page.evaluate(() => window.webtensor.inference.generate('Once upon a time', 16));
  await page.evaluate(() => window.webtensor.inference.load('webtensor/tiny-llama'));
  const served = await page.evaluate(() => window.webtensor.inference.generate('Once upon a time', 16));
  expect(fromHub.tokenIds).toEqual(served.tokenIds);
  expect(errors).toEqual([]);
});

test('a tampered hub file is refused with a sentence naming it; an unreachable hub says so', async ({ page }) => {
  await page.goto(`/?hub=${encodeURIComponent(hub.url)}`);
  const tampered = await page.evaluate(() =>
    window.webtensor.inference.load('onnx-community/SmolLM2-135M-Instruct').then(
      () => 'loaded',
      (e: Error) => e.message,
    ),
  );
  expect(tampered).toMatch(
    /onnx-community\/SmolLM2-135M-Instruct\/onnx\/model_quantized\.onnx does not match the sha256/,
  );

  await page.goto(`/?hub=${encodeURIComponent('http://127.0.0.1:9/')}`);
  const offline = await page.evaluate(() =>
    window.webtensor.inference.load('Xenova/all-MiniLM-L6-v2').then(
      () => 'loaded',
      (e: Error) => e.message,
    ),
  );
  expect(offline).toMatch(/The Hugging Face hub is not reachable from this browser/);
});
