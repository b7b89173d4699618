/**
 * Challenges look like users' requests: valid params for the protocol, a prompt space no miner can cache, and the
 * parameter mix of real traffic (greedy and sampled, chat and completion, short and long, with and without stops).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generateParamsSchema } from '../inference/protocol.ts';
import { rng } from '../yuma/synthetic.ts';
import { challengeParams, cryptoRandom, promptSpace } from './challenges.ts';

describe('challenge params', () => {
  it('are always valid generate params for the model asked (property)', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const params = challengeParams('karpathy/stories260K', rng(seed));
        expect(generateParamsSchema.parse(params)).toEqual(params);
        expect(params.model).toBe('karpathy/stories260K');
      }),
    );
  });

  it('draw from a space no cache holds, and rarely repeat', () => {
    expect(promptSpace()).toBeGreaterThan(1e15);
    const prompts = new Set(Array.from({ length: 2000 }, () => challengeParams('m', cryptoRandom).prompt));
    expect(prompts.size).toBeGreaterThan(1990);
  });

  it('mix chat and completion prompts, greedy and sampled, lengths, nuclei and stops as real traffic does', () => {
    const rand = rng(1);
    const all = Array.from({ length: 4000 }, () => challengeParams('m', rand));
    const share = (f: (p: (typeof all)[number]) => boolean) => all.filter(f).length / all.length;
    expect(share((p) => p.prompt.startsWith('User: '))).toBeCloseTo(0.5, 1);
    expect(share((p) => p.sampling !== undefined)).toBeCloseTo(0.6, 1);
    expect(share((p) => p.sampling?.topP !== undefined)).toBeGreaterThan(0.2);
    expect(share((p) => p.stop !== undefined)).toBeCloseTo(0.25, 1);
    expect(new Set(all.map((p) => p.maxNewTokens)).size).toBeGreaterThanOrEqual(9);
    expect(new Set(all.map((p) => p.sampling?.seed)).size).toBeGreaterThan(2000);
  });
});
