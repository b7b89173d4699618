/**
 * A validator's judgement of one answer, on steps made by the real decode step from rows of logits: an honest
 * answer passes both stages, greedy and sampled; another model's name, tokens that do not follow from their
 * candidates, a reference from another distribution, token ids outside the vocabulary and each breach of the
 * end-token rule ("eos" without the end token last, an end token inside any other answer) fail, saying which part.
 */
import { describe, expect, it } from 'vitest';
import { decodeStep, scorePosition, type Reference, type Sampling } from '../inference/sampler.ts';
import type { GenerateParams } from '../inference/protocol.ts';
import { judgeAnswer, judgeStageOne, judgeStageTwo, type Answer } from './judge.ts';

const MODEL = 'webtensor/tiny-llama';
const EOS = 2;

/** Rows of logits from a seeded LCG, peaked enough to look like a language model's. */
function rows(count: number, seed: number, vocab = 64): Float32Array[] {
  let s = seed >>> 0;
  return Array.from({ length: count }, () => {
    const row = new Float32Array(vocab);
    for (let i = 0; i < vocab; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      row[i] = (s / 2 ** 32) ** 3 * 16;
    }
    return row;
  });
}

/** An honest answer on `logits`: each token decoded from its row; "length" unless told. */
function answer(logits: Float32Array[], sampling?: Sampling, finish: Answer['finish'] = 'length'): Answer {
  const steps = logits.map((row, i) => decodeStep(row, i, sampling));
  return { model: MODEL, tokenIds: steps.map((s) => s.token), candidates: steps.map((s) => s.top), finish };
}

/** The validator's view of `tokenIds` on `logits`, marking EOS as the model's end token. */
const reference = (logits: Float32Array[], tokenIds: number[]): Reference =>
  tokenIds.map((id, i) => ({ ...scorePosition(logits[i]!, id), eos: id === EOS }));

const logits = rows(12, 7);
const params: GenerateParams = { model: MODEL, prompt: 'Once upon a time', maxNewTokens: 12 };

/** Rows whose last (and only that) row makes the end token certain, so a greedy answer ends with it. */
function endingRows(count: number): Float32Array[] {
  const out = rows(count, 11).map((row) => {
    row[EOS] = -100;
    return row;
  });
  out[count - 1]![EOS] = 1000;
  return out;
}

describe('judgeAnswer', () => {
  it('passes honest answers, greedy and sampled, at both stages, and stage 1 alone when not audited', () => {
    const greedy = answer(logits);
    expect(judgeAnswer(MODEL, params, greedy, undefined)).toMatchObject({ ok: true, stage2: null });
    expect(judgeAnswer(MODEL, params, greedy, reference(logits, greedy.tokenIds))).toMatchObject({
      ok: true,
      failed: null,
      stage2: { worstDistance: 0, worstRank: 1 },
    });
    const sampling = { seed: 9, temperature: 1.2 };
    const sampled = answer(logits, sampling);
    expect(judgeAnswer(MODEL, { ...params, sampling }, sampled, reference(logits, sampled.tokenIds))).toMatchObject({
      ok: true,
    });
  });

  it("fails another model's name and tokens that do not follow from their candidates (stage 1)", () => {
    const honest = answer(logits);
    expect(judgeStageOne('karpathy/stories260K', params, honest)).toMatchObject({ ok: false, failed: 'model' });
    const moved = { ...honest, tokenIds: honest.tokenIds.map((t, i) => (i === 4 ? honest.candidates[4]![1]![0] : t)) };
    expect(judgeAnswer(MODEL, params, moved, reference(logits, moved.tokenIds))).toMatchObject({
      ok: false,
      failed: 'stage-1',
      reason: expect.stringMatching(/token 4 does not follow/),
    });
  });

  it("fails another distribution's candidates and token ids outside the vocabulary (stage 2)", () => {
    const honest = answer(logits);
    const other = rows(12, 99);
    expect(judgeStageTwo(honest, reference(other, honest.tokenIds))).toMatchObject({
      ok: false,
      failed: 'stage-2',
      stage2: { ok: false },
    });
    expect(judgeAnswer(MODEL, params, honest, null)).toMatchObject({ ok: false, failed: 'vocabulary' });
  });

  it('holds an "eos" answer to end with the end token, and any other answer to hold none', () => {
    const ending = endingRows(6);
    const ended = answer(ending, undefined, 'eos');
    expect(ended.tokenIds.at(-1)).toBe(EOS);
    expect(ended.tokenIds.slice(0, -1)).not.toContain(EOS);
    expect(judgeStageTwo(ended, reference(ending, ended.tokenIds))).toMatchObject({ ok: true });
    // The same tokens sold as cut for length, or for a stop string: an end token inside.
    for (const finish of ['length', 'stop'] as const)
      expect(judgeStageTwo({ ...ended, finish }, reference(ending, ended.tokenIds))).toMatchObject({
        ok: false,
        failed: 'end',
        reason: expect.stringMatching(/holds the end token at position 5/),
      });
    // Truncated: the first half of an answer, claimed finished.
    const half = { ...ended, tokenIds: ended.tokenIds.slice(0, 3), candidates: ended.candidates.slice(0, 3) };
    expect(judgeStageTwo(half, reference(ending, half.tokenIds))).toMatchObject({
      ok: false,
      failed: 'end',
      reason: expect.stringMatching(/without the end token/),
    });
    // An empty answer holds only when cancelled.
    const empty = { tokenIds: [], candidates: [], finish: 'eos' as const };
    expect(judgeStageTwo(empty, [])).toMatchObject({ ok: false });
    expect(judgeStageTwo({ ...empty, finish: 'cancelled' }, [])).toMatchObject({ ok: true });
  });
});
