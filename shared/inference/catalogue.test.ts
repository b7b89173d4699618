/**
 * Subnet models are pinned: a hub entry at a branch can change under its name, so it may be downloaded by a user
 * but never named as a subnet's model; the shipped profiles name pinned models only.
 */
import { describe, expect, it } from 'vitest';
import { productionProfile, testProfile } from '../ledger/profiles.ts';
import { catalogue, hubCatalogue, isPinned, subnetModelProblem } from './catalogue.ts';

describe('subnet models', () => {
  it('the models this server serves are pinned by their files; hub entries at a branch are not', () => {
    expect(catalogue.every(isPinned)).toBe(true);
    expect(hubCatalogue.filter((m) => m.revision === 'main').every((m) => !isPinned(m))).toBe(true);
    expect(isPinned({ ...hubCatalogue[0]!, revision: '17c2f1eabe1e163acc15ad35e225794e7b907682' })).toBe(true);
  });

  it('refuses an unknown, unpinned or wrong-task model as a subnet model, naming why', () => {
    expect(subnetModelProblem('someone/else', 'text-generation')).toMatch(/not in this version's model catalogue/);
    expect(subnetModelProblem('Xenova/llama2.c-stories15M', 'text-generation')).toMatch(/branch "main", not pinned/);
    expect(subnetModelProblem('Xenova/all-MiniLM-L6-v2', 'text-generation')).toMatch(/feature-extraction model/);
    expect(subnetModelProblem('webtensor/tiny-llama', 'text-generation')).toBeNull();
  });

  it('every subnet of the shipped profiles names a pinned model', () => {
    for (const profile of [testProfile(0), productionProfile(0)])
      for (const s of profile.subnets) expect(subnetModelProblem(s.model, s.task), s.model).toBeNull();
  });
});
