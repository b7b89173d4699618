/**
 * Mining end to end (real relay, separate contexts, real WebRTC, real inference):
 * - a tab opened with ?autostart=1 becomes a miner of the best model the server has (stories260K here), on WASM,
 *   and says why it did not pick WebGPU;
 * - a tab can mine the project's generated model (webtensor/tiny-llama), and a client's remote answers from it,
 *   greedy and seeded, equal the client's own local runs;
 * - stop strings end generation; a request cancelled mid-stream stops the miner's work; a full queue says busy.
 */
import { expect, test } from '@playwright/test';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { openTabs } from './support/tabs.ts';

const relay = new RelayProcess(9790, 9791);
test.beforeAll(() => relay.start());
test.afterAll(() => relay.stop());
// 1.4-1.6 min in full local runs (tabs load models on two cores); room for a slower machine.
test.setTimeout(240_000);

test('miners serve, stream, sample with seeds, stop, cancel and refuse when busy', async ({ browser }) => {
  const tabs = await openTabs(browser, 3, relay.healthUrl, undefined, (k) =>
    k === 0 ? '' : k === 1 ? 'model=webtensor/tiny-llama' : 'role=client&device=webgpu',
  );
  const [storyMiner, tinyMiner, client] = tabs.map((t) => t.page) as [
    (typeof tabs)[0]['page'],
    (typeof tabs)[0]['page'],
    (typeof tabs)[0]['page'],
  ];
  await Promise.all(tabs.map((t) => t.page.evaluate(() => window.webtensor.ready)));
  for (const miner of [storyMiner, tinyMiner])
    await expect.poll(() => miner.evaluate(() => window.webtensor.miner.ready), { timeout: 60_000 }).toBe(true);

  // Opening the page made a miner of the best model present; no GPU here, and the page says so.
  const story = await storyMiner.evaluate(() => window.webtensor.miner);
  expect(story).toMatchObject({ model: 'karpathy/stories260K', device: 'wasm' });
  expect(story.deviceReason).toMatch(/no WebGPU adapter/);
  await expect(storyMiner.getByTestId('miner-device')).toContainText('no WebGPU adapter');
  expect(await tinyMiner.evaluate(() => window.webtensor.miner.model)).toBe('webtensor/tiny-llama');
  // A forced WebGPU choice without an adapter falls back to WASM and says why.
  const forced = await client.evaluate(() => window.webtensor.inference.load('webtensor/tiny-llama', 'webgpu'));
  expect(forced.device).toBe('wasm');
  expect(forced.reason).toMatch(/WebGPU was chosen, but/);

  for (const t of tabs)
    await expect
      .poll(() => t.page.evaluate(() => window.webtensor.peers.filter((p) => p.direct).length), { timeout: 30_000 })
      .toBe(2);
  const tinyId = await tinyMiner.evaluate(() => window.webtensor.peerId!);
  const storyId = await storyMiner.evaluate(() => window.webtensor.peerId!);

  // Greedy and seeded answers from the generated model equal the client's own runs.
  for (const extras of [{}, { sampling: { seed: 42, temperature: 0.9, topK: 40 } }]) {
    const local = await client.evaluate(
      (x) => window.webtensor.inference.generate('The miners answered', 24, x),
      extras,
    );
    const remote = await client.evaluate(
      ([peer, x]) => window.webtensor.inference.remote(peer, 'webtensor/tiny-llama', 'The miners answered', 24, x),
      [tinyId, extras] as const,
    );
    expect(remote.result.tokenIds).toEqual(local.tokenIds);
    expect(remote.streamed.join('').trim()).toBe(local.text.trim());
    expect(remote.result.outputHash).toMatch(/^[0-9a-f]{64}$/);
  }
  const seeded = (seed: number) =>
    client.evaluate(
      (s) => window.webtensor.inference.generate('Once', 24, { sampling: { seed: s, temperature: 1 } }),
      seed,
    );
  expect((await seeded(1)).tokenIds).not.toEqual((await seeded(2)).tokenIds);

  // A stop string ends the generation; the text is cut before it.
  await client.evaluate(() => window.webtensor.inference.load('karpathy/stories260K'));
  const full = await client.evaluate(() => window.webtensor.inference.generate('Once upon a time', 48));
  expect(full.text).toContain('Lily');
  const stopped = await client.evaluate(() =>
    window.webtensor.inference.generate('Once upon a time', 48, { stop: ['Lily'] }),
  );
  expect(stopped.finish).toBe('stop');
  expect(stopped.text).toBe(full.text.slice(0, full.text.indexOf('Lily')));
  expect(stopped.tokenIds.length).toBeLessThan(full.tokenIds.length);

  // Cancelled after three streamed pieces: the miner stops generating well short of the budget.
  const cancelled = await client.evaluate(
    (peer) =>
      window.webtensor.inference
        .remote(peer, 'karpathy/stories260K', 'Once upon a time', 128, { cancelAfterPieces: 3 })
        .then(
          () => 'finished',
          (e: { code: string }) => e.code,
        ),
    storyId,
  );
  expect(cancelled).toBe('cancelled');
  await expect
    .poll(() => storyMiner.evaluate(() => window.webtensor.miner.lastRequest), { timeout: 10_000 })
    .toMatchObject({ finish: 'cancelled' });
  expect((await storyMiner.evaluate(() => window.webtensor.miner.lastRequest))!.tokens).toBeLessThan(128);

  // Eight requests at once to a miner that holds four: the rest are told it is busy, the four are answered.
  const outcomes = await client.evaluate(
    (peer) =>
      Promise.all(
        Array.from({ length: 8 }, (_, k) =>
          window.webtensor.inference.remote(peer, 'karpathy/stories260K', `Story ${k}`, 128).then(
            (r) => (r.result.tokenIds.length > 0 ? 'ok' : 'empty'),
            (e: { code: string }) => e.code,
          ),
        ),
      ),
    storyId,
  );
  expect(outcomes.filter((o) => o === 'ok')).toHaveLength(4);
  expect(outcomes.filter((o) => o === 'busy')).toHaveLength(4);
  const after = await storyMiner.evaluate(() => window.webtensor.miner);
  expect(after).toMatchObject({ busyRefusals: 4, queueDepth: 0 });

  await storyMiner.setViewportSize({ width: 1280, height: 800 });
  await storyMiner.screenshot({ path: test.info().outputPath('mine-1280.png'), fullPage: true });
  await storyMiner.setViewportSize({ width: 375, height: 812 });
  await storyMiner.screenshot({ path: test.info().outputPath('mine-375.png'), fullPage: true });
  for (const t of tabs) expect(t.errors).toEqual([]);
  for (const t of tabs) await t.context.close();
});

test('a fault flag is refused on a network that is not a test network', async ({ browser }) => {
  // This relay serves the production profile (its default).
  const [tab] = await openTabs(browser, 1, relay.healthUrl, undefined, () => 'role=miner&fault=wrong-output');
  await expect.poll(() => tab!.page.evaluate(() => window.webtensor.status), { timeout: 30_000 }).toBe('error');
  expect(await tab!.page.evaluate(() => window.webtensor.error)).toMatch(/only allowed on a test network/);
  await expect(tab!.page.getByRole('alert').first()).toContainText('only allowed on a test network');
  await tab!.context.close();
});
