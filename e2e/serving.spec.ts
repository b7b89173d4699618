/**
 * Miners serve inference to peers over direct WebRTC: two miner tabs and a client tab (separate contexts, real
 * relay). The client asks both miners; the tokens streamed back equal the client's own local run.
 */
import { expect, test } from '@playwright/test';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { openTabs } from './support/tabs.ts';

const relay = new RelayProcess(9590, 9591);
test.beforeAll(() => relay.start());
test.afterAll(() => relay.stop());
// 1.3 min in full local runs (tabs load models on two cores); room for a slower machine.
test.setTimeout(200_000);

test('a client gets streamed tokens from two miners, identical to its own local run', async ({ browser }) => {
  const tabs = await openTabs(browser, 3, relay.healthUrl);
  const [minerA, minerB, client] = tabs.map((t) => t.page) as [
    (typeof tabs)[0]['page'],
    (typeof tabs)[0]['page'],
    (typeof tabs)[0]['page'],
  ];
  await Promise.all(tabs.map((t) => t.page.evaluate(() => window.webtensor.ready)));
  await Promise.all(
    [minerA, minerB, client].map((p) => p.evaluate(() => window.webtensor.inference.serve('karpathy/stories260K'))),
  );
  for (const t of tabs)
    await expect
      .poll(() => t.page.evaluate(() => window.webtensor.peers.filter((p) => p.direct).length), { timeout: 30_000 })
      .toBe(2);

  const prompts = ['Once upon a time', 'The dog', 'Lily wanted to', 'One day, a little bird'];
  for (const prompt of prompts) {
    const local = await client.evaluate((p) => window.webtensor.inference.generate(p, 24), prompt);
    for (const miner of [minerA, minerB]) {
      const id = await miner.evaluate(() => window.webtensor.peerId!);
      const remote = await client.evaluate(
        ([peer, p]) => window.webtensor.inference.remote(peer, 'karpathy/stories260K', p, 24),
        [id, prompt] as const,
      );
      expect(remote.result.tokenIds).toEqual(local.tokenIds);
      expect(remote.result.text).toBe(local.text);
      expect(remote.result).toMatchObject({ miner: id, model: 'karpathy/stories260K', finish: 'length' });
      expect(remote.streamed.length).toBeGreaterThan(1); // it streamed, not one final blob
      expect(remote.streamed.join('').trim()).toBe(local.text.trim());
    }
  }

  // A request for a model the miner does not serve, and one over the token budget, get typed errors.
  const idA = await minerA.evaluate(() => window.webtensor.peerId!);
  const wrong = await client.evaluate(
    (peer) =>
      window.webtensor.inference.remote(peer, 'karpathy/other', 'x', 4).then(
        () => null,
        (e: { code: string }) => e.code,
      ),
    idA,
  );
  expect(wrong).toBe('unsupported-model');
  const tooLong = await client.evaluate(
    (peer) =>
      window.webtensor.inference.remote(peer, 'karpathy/stories260K', 'x', 100_000).then(
        () => null,
        (e: { code: string }) => e.code,
      ),
    idA,
  );
  expect(tooLong).toBe('bad-params');
  // The miners counted what they served; the panel shows it.
  const minerState = await minerA.evaluate(() => window.webtensor.miner);
  expect(minerState).toMatchObject({
    model: 'karpathy/stories260K',
    device: 'wasm',
    queueDepth: 0,
    ready: true,
    served: prompts.length,
  });
  expect(minerState.tokensServed).toBe(prompts.length * 24);
  await expect(minerA.getByTestId('miner')).toContainText(`${prompts.length}`);
  await minerA.setViewportSize({ width: 1280, height: 800 });
  await minerA.screenshot({ path: test.info().outputPath('miner-1280.png'), fullPage: true });
  for (const t of tabs) expect(t.errors).toEqual([]);
  for (const t of tabs) await t.context.close();
});
