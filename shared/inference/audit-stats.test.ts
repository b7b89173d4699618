/**
 * The audit's two checks on steps made by the real decode step from rows of logits: honest steps pass stage 1,
 * greedy and sampled; a changed log-prob, a reordered list, a token its list does not select and a missing step
 * each fail, naming the position. Stage 2 passes the steps against their own rows and fails them against another
 * distribution, a made-up candidate list or a missing position.
 */
import { describe, expect, it } from 'vitest';
import { checkSteps, compareWithReference, DEFAULT_AUDIT_THRESHOLDS, topProblem } from './audit-stats.ts';
import { CANDIDATES, decodeStep, scorePosition, type Candidate, type Sampling, type Step } from './sampler.ts';

/** Rows of logits from a seeded LCG, peaked enough to look like a language model's. */
function rows(count: number, seed: number, vocab = 512): Float32Array[] {
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

function generate(logits: Float32Array[], sampling?: Sampling): { steps: Step[]; tokenIds: number[] } {
  const steps = logits.map((row, i) => decodeStep(row, i, sampling));
  return { steps, tokenIds: steps.map((s) => s.token) };
}

const score = (logits: Float32Array[], tokenIds: number[]) => tokenIds.map((id, i) => scorePosition(logits[i]!, id));

const sampling: Sampling = { seed: 42, temperature: 1.3, topP: 0.95 };
const honestRows = rows(24, 1);

describe('stage 1: checkSteps', () => {
  it('passes honest steps, greedy and sampled, and fails sampled steps checked under another seed', () => {
    const greedy = generate(honestRows);
    expect(checkSteps(greedy.steps, greedy.tokenIds)).toEqual({ ok: true });
    const sampled = generate(honestRows, sampling);
    expect(checkSteps(sampled.steps, sampled.tokenIds, sampling)).toEqual({ ok: true });
    expect(sampled.tokenIds).not.toEqual(greedy.tokenIds);
    expect(checkSteps(sampled.steps, sampled.tokenIds, { ...sampling, seed: 43 })).toMatchObject({ ok: false });
  });

  it('fails a changed log-prob, a reordered list, an unselectable token and a missing step, naming the position', () => {
    const { steps, tokenIds } = generate(honestRows);
    const edited = (i: number, edit: (s: Step) => void) => {
      const copy = structuredClone(steps);
      edit(copy[i]!);
      return copy;
    };
    // The first candidate claimed certain: with the others, more than all the probability.
    expect(
      checkSteps(
        edited(3, (s) => (s.top[0]![1] = 0)),
        tokenIds,
      ),
    ).toMatchObject({
      ok: false,
      position: 3,
      reason: expect.stringMatching(/^position 3: .*add up/),
    });
    expect(
      checkSteps(
        edited(5, (s) => s.top.reverse()),
        tokenIds,
      ),
    ).toMatchObject({
      ok: false,
      position: 5,
      reason: expect.stringMatching(/out of order/),
    });
    const swapped = edited(7, (s) => (s.token = s.top[1]![0]));
    const ids = [...tokenIds];
    ids[7] = swapped[7]!.token;
    expect(checkSteps(swapped, ids)).toMatchObject({
      ok: false,
      position: 7,
      reason: expect.stringMatching(/not the one its candidates select/),
    });
    expect(checkSteps(steps.slice(0, -1), tokenIds)).toMatchObject({ ok: false, position: 23 });
    expect(checkSteps(steps, tokenIds.slice(0, -1))).toMatchObject({ ok: false, position: 23 });
    expect(
      checkSteps(
        steps,
        tokenIds.map((t, i) => (i === 2 ? t + 1 : t)),
      ),
    ).toMatchObject({
      ok: false,
      position: 2,
    });
  });

  it('says what is wrong with a malformed list', () => {
    expect(topProblem([])).toMatch(/1 to 16/);
    expect(topProblem(Array.from({ length: 17 }, (_, i) => [i, -5000]))).toMatch(/1 to 16/);
    expect(topProblem([[1, 5]])).toMatch(/outside/);
    expect(topProblem([[1, -0.5]])).toMatch(/outside/);
    expect(topProblem([[-1, 0]])).toMatch(/token id/);
    expect(
      topProblem([
        [1, -800],
        [1, -900],
      ]),
    ).toMatch(/twice/);
    expect(topProblem([[1, 2, 3]])).toMatch(/pair/);
    // Fewer than 16 candidates is only the whole vocabulary, which holds all the probability.
    expect(topProblem([[1, -1000]])).toMatch(/fewer than 16/);
    expect(topProblem([[4, 0]])).toBeNull();
    expect(decodeStep(rows(1, 3)[0]!, 0).top).toHaveLength(CANDIDATES);
  });

  it('refuses invalid sampling parameters instead of throwing', () => {
    const { steps, tokenIds } = generate(honestRows);
    expect(checkSteps(steps, tokenIds, { seed: 1, temperature: 5 })).toMatchObject({ ok: false, position: 0 });
  });
});

describe('stage 2: compareWithReference', () => {
  it('passes steps against their own rows: rank 1 when greedy, distance 0', () => {
    const { steps, tokenIds } = generate(honestRows);
    const result = compareWithReference(steps, score(honestRows, tokenIds));
    expect(result).toMatchObject({ ok: true, worstRank: 1, worstDistance: 0, failedAt: null });
    expect(result.positions).toHaveLength(24);
    expect(result.positions.every((p) => p.overlap === CANDIDATES)).toBe(true);
  });

  it("allows a sampled token as far down the validator's ranking as the miner's own list put it, plus maxRank", () => {
    const hot = { seed: 9, temperature: 2 };
    const { steps, tokenIds } = generate(honestRows, hot);
    const result = compareWithReference(steps, score(honestRows, tokenIds));
    expect(result.ok).toBe(true);
    expect(result.worstRank).toBeGreaterThan(DEFAULT_AUDIT_THRESHOLDS.maxRank);
    expect(result.positions.every((p) => p.rank === p.minerRank)).toBe(true);
  });

  it("fails against another model's distribution, naming the first position and why", () => {
    const { steps, tokenIds } = generate(honestRows);
    const other = rows(24, 2);
    const result = compareWithReference(steps, score(other, tokenIds));
    expect(result.ok).toBe(false);
    expect(result.failedAt).toBe(0);
    expect(result.reason).toMatch(/^position 0: /);
    expect(result.worstRank).toBeGreaterThan(DEFAULT_AUDIT_THRESHOLDS.maxRank);
    expect(result.worstDistance).toBeGreaterThan(DEFAULT_AUDIT_THRESHOLDS.maxDistance);
  });

  it('fails made-up candidates the validator does not list, though the chosen token is scored right', () => {
    const { steps, tokenIds } = generate(honestRows);
    const reference = score(honestRows, tokenIds);
    const madeUp = steps.map((s, i): Step => {
      const theirs = new Set(reference[i]!.top.map(([id]) => id));
      const others = Array.from({ length: 512 }, (_, id) => id).filter((id) => !theirs.has(id));
      const top: Candidate[] = [s.top[0]!, ...others.slice(0, 15).map((id): Candidate => [id, s.top[1]![1]])];
      return { token: s.token, top };
    });
    const result = compareWithReference(madeUp, reference);
    expect(result).toMatchObject({ ok: false, failedAt: 0, reason: expect.stringMatching(/log-probs differ/) });
  });

  it('fails a missing position, and takes the thresholds it is given', () => {
    const { steps, tokenIds } = generate(honestRows);
    const reference = score(honestRows, tokenIds);
    expect(compareWithReference(steps.slice(0, 20), reference)).toMatchObject({ ok: false, failedAt: 20 });
    const shifted = reference.map((r) => ({ ...r, q: r.q - 10 }));
    expect(compareWithReference(steps, shifted).ok).toBe(true);
    expect(compareWithReference(steps, shifted, { maxRank: 8, maxDistance: 5 / 1024 })).toMatchObject({
      ok: false,
      failedAt: 0,
    });
  });
});
