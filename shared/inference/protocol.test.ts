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
    // Each token its own only, certain candidate: consistent (stage 1), whatever a model would say (stage 2).
    candidates: tokenIds.map((t) => [[t, 0]] as [number, number][]),
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

  it('refuses, given the params, tokens that do not follow from their signed candidates (stage 1), unless told to keep them', async () => {
    const signed = async (over: Partial<Parameters<typeof signResult>[1]>) =>
      signResult(minerKey, { ...(await answer()), ...over });
    // Token 17 listed with 9 as the more probable candidate: greedy would have taken 9.
    const lie = await signed({
      candidates: [
        [[5, 0]],
        [
          [9, -10],
          [17, -2000],
        ],
        [[2, 0]],
      ],
    });
    expect(await checkResult(lie, { miner, requestId: 'req-1', params: asked })).toMatch(/token 1 does not follow/);
    expect(await checkResult(lie, { miner, requestId: 'req-1', params: asked, skipStageOne: true })).toBeNull();
    expect(await checkResult(lie, { miner, requestId: 'req-1' })).toBeNull(); // no params: authenticity only
    // Candidates for fewer tokens than it has; "length" with fewer tokens than asked.
    expect(await checkResult(await signed({ candidates: [[[5, 0]]] }), { miner, requestId: 'req-1' })).toMatch(
      /candidates for 1 tokens, not its 3/,
    );
    const short = await signed({ finish: 'length' });
    expect(await checkResult(short, { miner, requestId: 'req-1', params: { ...asked, maxNewTokens: 5 } })).toMatch(
      /other params|after 3 of 5/,
    );
  });

  it('refuses malformed answers with the field named', async () => {
    expect(await checkResult(null, { miner, requestId: 'r' })).toMatch(/malformed/);
    const a = await answer();
    expect(await checkResult({ ...a, finish: 'bored' }, { miner, requestId: 'req-1' })).toMatch(/finish/);
    expect(await checkResult({ ...a, tokenIds: [-1] }, { miner, requestId: 'req-1' })).toMatch(/tokenIds/);
    expect(await checkResult({ ...a, candidates: [[[5, 1]], [], [[2, 0]]] }, { miner, requestId: 'req-1' })).toMatch(
      /candidates/,
    );
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
