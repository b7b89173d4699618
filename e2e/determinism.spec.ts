/**
 * What validators rely on: two tabs in separate browser contexts produce identical greedy token ids and
 * identical embedding bytes for the same 20 prompts on stories260K (WASM, fp32, batch 1).
 */
import { expect, test } from '@playwright/test';

const prompts = [
  'Once upon a time',
  'The little dog',
  'Lily wanted to',
  'One day, a bird',
  'Tom and Sue went to the park',
  'The sun was',
  'She saw a big',
  'Mom said',
  'The cat ran',
  'A boy named Ben',
  'There was a tree',
  'He liked to play',
  'The ball was red',
  'In the garden',
  'They were happy',
  'It was a sunny day',
  'The old man',
  'A small fish',
  'The girl smiled',
  'At night, the moon',
];

test('20 prompts: identical token ids and embedding bytes in two browser contexts', async ({ browser }) => {
  test.setTimeout(120_000);
  const runs: { ids: number[][]; embeddings: string[] }[] = [];
  for (let k = 0; k < 2; k++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto('/');
    const run = await page.evaluate(async (ps) => {
      await window.webtensor.inference.load('karpathy/stories260K');
      await window.webtensor.inference.load('karpathy/stories260K-embed');
      const ids: number[][] = [];
      const embeddings: string[] = [];
      for (const p of ps) {
        ids.push((await window.webtensor.inference.generate(p, 16)).tokenIds);
        embeddings.push(await window.webtensor.inference.embedHex(p));
      }
      return { ids, embeddings };
    }, prompts);
    runs.push(run);
    await context.close();
  }
  const [a, b] = runs as [(typeof runs)[0], (typeof runs)[0]];
  expect(a.ids.every((ids) => ids.length === 16)).toBe(true);
  expect(a.embeddings.every((hex) => hex.length === 64 * 4 * 2)).toBe(true); // 64 float32s
  expect(new Set(a.embeddings).size).toBe(prompts.length); // different prompts, different vectors
  expect(b.ids).toEqual(a.ids);
  expect(b.embeddings).toEqual(a.embeddings);
});
