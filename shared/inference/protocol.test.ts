/** The miner's signed answer: what a client accepts, and every way a forged or altered answer is refused. */
import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { findServedModel } from './catalogue.ts';
import { checkResult, generateParamsSchema, modelHash, outputHash, paramsHash, signResult } from './protocol.ts';

const minerKey = await generateKeyPair('Ed25519');
const miner = peerIdFromPrivateKey(minerKey).toString();
const otherKey = await generateKeyPair('Ed25519');

const asked = { model: 'webtensor/tiny-llama', prompt: 'Once', maxNewTokens: 3 };

async function answer() {
  const tokenIds = [5, 17, 2];
  return signResult(minerKey, {
    requestId: 'req-1',
    miner,
    model: 'webtensor/tiny-llama',
    paramsHash: await paramsHash(asked),
    modelHash: await modelHash(findServedModel('webtensor/tiny-llama')!),
    text: 'the cat',
    tokenIds,
    outputHash: await outputHash(tokenIds),
    promptTokens: 4,
    finish: 'eos',
    queueMs: 0,
    inferMs: 12,
  });
}

describe('signed generation results', () => {
  it('accepts an honest answer', async () => {
    expect(await checkResult(await answer(), { miner, requestId: 'req-1' })).toBeNull();
  });

  it('refuses an answer whose text or token ids were changed after signing', async () => {
    const a = await answer();
    expect(await checkResult({ ...a, text: 'the dog' }, { miner, requestId: 'req-1' })).toMatch(/signature/);
    const ids = [5, 17, 3];
    expect(
      await checkResult({ ...a, tokenIds: ids, outputHash: await outputHash(ids) }, { miner, requestId: 'req-1' }),
    ).toMatch(/signature/);
    expect(await checkResult({ ...a, tokenIds: ids }, { miner, requestId: 'req-1' })).toMatch(/output hash/);
  });

  it('refuses an answer signed by someone else, or for another request', async () => {
    const a = await answer();
    const forged = await signResult(otherKey, { ...a });
    expect(await checkResult(forged, { miner, requestId: 'req-1' })).toMatch(/signature/);
    const other = peerIdFromPrivateKey(otherKey).toString();
    expect(await checkResult(a, { miner: other, requestId: 'req-1' })).toMatch(/names/);
    expect(await checkResult(a, { miner, requestId: 'req-2' })).toMatch(/answers request req-1/);
  });

  it('refuses an answer to other params than the ones asked (a signed answer cannot be paired with another prompt)', async () => {
    const a = await answer();
    expect(await checkResult(a, { miner, requestId: 'req-1', params: asked })).toBeNull();
    expect(await checkResult(a, { miner, requestId: 'req-1', params: { ...asked, prompt: 'Twice' } })).toMatch(
      /other params/,
    );
    const sampled = { ...asked, sampling: { seed: 1, temperature: 0.7 } };
    expect(await checkResult(a, { miner, requestId: 'req-1', params: sampled })).toMatch(/other params/);
  });

  it('refuses malformed answers with the field named', async () => {
    expect(await checkResult(null, { miner, requestId: 'r' })).toMatch(/malformed/);
    const a = await answer();
    expect(await checkResult({ ...a, finish: 'bored' }, { miner, requestId: 'req-1' })).toMatch(/finish/);
    expect(await checkResult({ ...a, tokenIds: [-1] }, { miner, requestId: 'req-1' })).toMatch(/tokenIds/);
  });

  it('model hashes differ between models', async () => {
    const a = await modelHash(findServedModel('webtensor/tiny-llama')!);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).not.toBe(await modelHash(findServedModel('karpathy/stories260K')!));
  });
});

describe('generation requests', () => {
  const ok = { model: 'm', prompt: 'hi', maxNewTokens: 8 };
  it('accept greedy, seeded sampling and stop strings', () => {
    expect(generateParamsSchema.safeParse(ok).success).toBe(true);
    expect(
      generateParamsSchema.safeParse({ ...ok, sampling: { seed: 7, temperature: 0.8, topK: 20 }, stop: ['.'] }).success,
    ).toBe(true);
  });
  it.each([
    [{ ...ok, prompt: '' }, 'prompt'],
    [{ ...ok, prompt: 'x'.repeat(2001) }, 'prompt'],
    [{ ...ok, maxNewTokens: 129 }, 'maxNewTokens'],
    [{ ...ok, maxNewTokens: 1.5 }, 'maxNewTokens'],
    [{ ...ok, sampling: { seed: -1, temperature: 1 } }, 'sampling'],
    [{ ...ok, sampling: { seed: 1, temperature: 0 } }, 'sampling'],
    [{ ...ok, stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    [{ ...ok, stop: [''] }, 'stop'],
  ])('refuse %j, naming %s', (params, field) => {
    const r = generateParamsSchema.safeParse(params);
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path[0]).toBe(field);
  });
});
