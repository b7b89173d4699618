/**
 * The decode step: its PRNG is the reference MurmurHash3, its candidates are the true top of the row in signed
 * order, and its choice is a function of the candidates, the position and the parameters alone: greedy takes the
 * first, a seed repeats, a tiny nucleus or topK 1 is greedy, and over many draws Gumbel-max samples the listed
 * distribution.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CANDIDATES,
  decodeStep,
  LOGPROB_UNIT,
  MIN_Q,
  murmur3,
  quantize,
  scorePosition,
  selectToken,
  uniform,
  type Candidate,
  type Sampling,
} from './sampler.ts';

/** A row of logits from a seeded LCG, spread like a language model's (a few tens of units). */
function randomLogits(vocab: number, seed: number): Float32Array {
  const row = new Float32Array(vocab);
  let s = seed >>> 0;
  for (let i = 0; i < vocab; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    row[i] = (s / 2 ** 32) * 20 - 10;
  }
  return row;
}

/** The reference: float64 log-softmax of every token, fully sorted (log-prob descending, then id ascending). */
function sortedLogProbs(row: Float32Array): [number, number][] {
  const max = Math.max(...row);
  let sum = 0;
  for (const l of row) sum += Math.exp(l - max);
  const lps = Array.from(row, (l, id): [number, number] => [id, l - max - Math.log(sum)]);
  return lps.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
}

/** A well-formed candidate list: distinct ids, q in range, signed order. */
const topArb = fc
  .uniqueArray(fc.integer({ min: 0, max: 50_000 }), { minLength: 1, maxLength: CANDIDATES })
  .chain((ids) =>
    fc
      .array(fc.integer({ min: MIN_Q, max: 0 }), { minLength: ids.length, maxLength: ids.length })
      .map((qs) => ids.map((id, k): Candidate => [id, qs[k]!]).sort((a, b) => b[1] - a[1] || a[0] - b[0])),
  );

const samplingArb: fc.Arbitrary<Sampling> = fc.record(
  {
    seed: fc.integer({ min: 0, max: 0xffffffff }),
    temperature: fc.double({ min: 0.05, max: 2, noNaN: true }),
    topK: fc.integer({ min: 1, max: 1000 }),
    topP: fc.double({ min: 0.01, max: 1, noNaN: true }),
  },
  { requiredKeys: ['seed', 'temperature'] },
);

describe('PRNG', () => {
  it('is MurmurHash3_x86_32 (reference vectors)', () => {
    expect(murmur3(0, [0])).toBe(0x2362f9de);
    expect(murmur3(0, [0x87654321])).toBe(0xf55b516b);
    expect(murmur3(0x5082edee, [0x87654321])).toBe(0x2362f9de);
    expect(murmur3(1, [])).toBe(0x514e28b7);
    expect(murmur3(0xffffffff, [])).toBe(0x81f16f39);
  });

  it('gives uniforms strictly inside (0, 1), even at the ends of its 53-bit range', () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.nat(), (seed, position, id) => {
        const u = uniform(seed, position, id);
        return u > 0 && u < 1;
      }),
    );
    expect(1 / (2 ** 53 + 2)).toBeGreaterThan(0);
    expect(2 ** 53 / (2 ** 53 + 2)).toBeLessThan(1);
  });
});

describe('quantize', () => {
  it('rounds to 1/1024 nat, clamps at MIN_Q and never gives -0', () => {
    expect(quantize(0)).toBe(0);
    expect(Object.is(quantize(-0.0001), 0)).toBe(true);
    expect(quantize(-1)).toBe(-1024);
    expect(quantize(Math.log(0.5))).toBe(-710);
    expect(quantize(-1000)).toBe(MIN_Q);
    expect(quantize(-Infinity)).toBe(MIN_Q);
    fc.assert(
      fc.property(fc.double({ min: -40, max: 0, noNaN: true }), (lp) => {
        const q = quantize(lp);
        return (
          Number.isInteger(q) && q <= 0 && q >= MIN_Q && (q === MIN_Q || Math.abs(q / LOGPROB_UNIT - lp) <= 1 / 2048)
        );
      }),
    );
  });
});

describe('decodeStep', () => {
  it('lists the true top 16 of a row, quantized, in signed order', () => {
    for (const [vocab, seed] of [
      [512, 1],
      [439, 2],
      [32_000, 3],
      [10, 4],
    ] as const) {
      const row = randomLogits(vocab, seed);
      const step = decodeStep(row, 0);
      const truth = sortedLogProbs(row).slice(0, Math.min(CANDIDATES, vocab));
      expect(step.top.map(([id]) => id).sort((a, b) => a - b)).toEqual(truth.map(([id]) => id).sort((a, b) => a - b));
      expect(step.top).toEqual(
        truth.map(([id, lp]): Candidate => [id, quantize(lp)]).sort((a, b) => b[1] - a[1] || a[0] - b[0]),
      );
      expect(step.token).toBe(truth[0]![0]);
    }
  });

  it('breaks ties in log-prob by the lower token id', () => {
    const row = new Float32Array(40).fill(1);
    row[30] = 2;
    const step = decodeStep(row, 0);
    expect(step.top.map(([id]) => id)).toEqual([30, ...Array.from({ length: 15 }, (_, i) => i)]);
  });

  it('chooses what selectToken chooses from its own candidates: the list, position and parameters decide', () => {
    fc.assert(
      fc.property(fc.integer(), fc.nat(1000), samplingArb, (seed, position, sampling) => {
        const step = decodeStep(randomLogits(512, seed), position, sampling);
        return step.token === selectToken(step.top, position, sampling) && step.top.some(([id]) => id === step.token);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a row that is not finite numbers', () => {
    expect(() => decodeStep(new Float32Array([1, NaN, 2]), 0)).toThrow(/not finite/);
  });
});

describe('selectToken', () => {
  it('is greedy without sampling: the first candidate', () => {
    fc.assert(fc.property(topArb, fc.nat(), (top, position) => selectToken(top, position) === top[0]![0]));
  });

  it('is the same for the same list, position and parameters, and one of the candidates', () => {
    fc.assert(
      fc.property(topArb, fc.nat(), samplingArb, (top, position, sampling) => {
        const token = selectToken(top, position, sampling);
        return (
          token === selectToken(structuredClone(top), position, { ...sampling }) && top.some(([id]) => id === token)
        );
      }),
    );
  });

  it('is greedy with a tiny nucleus or topK 1, whatever the seed and temperature', () => {
    fc.assert(
      fc.property(topArb, fc.nat(), samplingArb, (top, position, sampling) => {
        const narrow = selectToken(top, position, { ...sampling, topK: undefined, topP: 1e-9 });
        const one = selectToken(top, position, { ...sampling, topK: 1, topP: undefined });
        return narrow === top[0]![0] && one === top[0]![0];
      }),
    );
  });

  it('keeps only the nucleus and the first topK candidates', () => {
    const top: Candidate[] = [
      [7, quantize(Math.log(0.5))],
      [3, quantize(Math.log(0.3))],
      [11, quantize(Math.log(0.2))],
    ];
    const drawn = (s: Omit<Sampling, 'seed'>) =>
      new Set(Array.from({ length: 2000 }, (_, seed) => selectToken(top, 0, { ...s, seed })));
    expect(drawn({ temperature: 1 })).toEqual(new Set([7, 3, 11]));
    expect(drawn({ temperature: 1, topP: 0.7 })).toEqual(new Set([7, 3]));
    expect(drawn({ temperature: 1, topK: 2 })).toEqual(new Set([7, 3]));
    expect(drawn({ temperature: 1, topK: 2, topP: 0.4 })).toEqual(new Set([7]));
  });

  it('samples the listed distribution: over many draws the frequencies fit (chi-square, 2 degrees of freedom)', () => {
    const probs = [0.5, 0.3, 0.2];
    const top = probs.map((p, k): Candidate => [[7, 3, 11][k]!, quantize(Math.log(p))]);
    // The distribution actually listed: the quantized log-probs, normalised.
    const weights = top.map(([, q]) => Math.exp(q / LOGPROB_UNIT));
    const expected = weights.map((w) => w / weights.reduce((s, x) => s + x, 0));
    const n = 30_000;
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      // Vary the seed and the position together: both key the noise.
      const token = selectToken(top, i % 300, { seed: Math.floor(i / 300) * 7919, temperature: 1 });
      counts.set(token, (counts.get(token) ?? 0) + 1);
    }
    const chi2 = top.reduce(
      (s, [id], k) => s + ((counts.get(id) ?? 0) - n * expected[k]!) ** 2 / (n * expected[k]!),
      0,
    );
    // P(chi2 > 30 | 2 dof) = e^-15, about 3e-7.
    expect(chi2).toBeLessThan(30);
  });

  it('flattens with temperature: at T = 2 the third candidate is drawn more often than at T = 0.5', () => {
    const top: Candidate[] = [
      [1, quantize(Math.log(0.6))],
      [2, quantize(Math.log(0.3))],
      [3, quantize(Math.log(0.1))],
    ];
    const third = (temperature: number) =>
      Array.from({ length: 5000 }, (_, seed) => selectToken(top, 0, { seed, temperature })).filter((t) => t === 3)
        .length;
    expect(third(2)).toBeGreaterThan(third(0.5) * 3);
  });

  it('refuses parameters outside the request schema', () => {
    const top: Candidate[] = [[1, 0]];
    expect(() => selectToken(top, 0, { seed: -1, temperature: 1 })).toThrow(/seed/);
    expect(() => selectToken(top, 0, { seed: 1, temperature: 0 })).toThrow(/temperature/);
    expect(() => selectToken(top, 0, { seed: 1, temperature: 1, topP: 0 })).toThrow(/topP/);
    expect(() => selectToken(top, 0, { seed: 1, temperature: 1, topK: 0.5 })).toThrow(/topK/);
    expect(() => selectToken([], 0)).toThrow(/at least one/);
  });
});

describe('scorePosition', () => {
  it("ranks a token among the row's float64 log-probs, ties to the lower id, and lists decodeStep's candidates", () => {
    const row = randomLogits(512, 9);
    const sorted = sortedLogProbs(row);
    for (const k of [0, 1, 15, 16, 300, 511]) {
      const [id, lp] = sorted[k]!;
      expect(scorePosition(row, id)).toEqual({ rank: k + 1, q: quantize(lp), top: decodeStep(row, 0).top });
    }
    const flat = new Float32Array(8).fill(0);
    expect(scorePosition(flat, 5).rank).toBe(6);
    expect(() => scorePosition(row, 512)).toThrow(/vocabulary/);
  });
});
