/** Unit tests of each epoch step, with numbers worked out by hand or from subtensor's math tests. */
import { describe, expect, it } from 'vitest';
import { ONE, ZERO, fromFloat, fromInt, toNumber, u16Proportion } from './fixed.ts';
import { isTopkNonzero, normalize, vecMaxUpscaleToU16, weightedMedian } from './math.ts';
import {
  colClip,
  colMaxUpscale,
  colNormalize,
  fromRows,
  interpolate,
  maskDiag,
  matEma,
  matEmaAlpha,
  rowNormalize,
  toRows,
  vecMask,
  weightedMedianCol,
  type SparseRow,
} from './sparse.ts';

type SparseMatrix = SparseRow[];
const S = fromRows;
import { liquidAlphaSigmoid } from './bonds.ts';
import { normalizedStake } from './epoch.ts';

const f = (x: number) => fromFloat(x);
const values = (m: SparseMatrix | ReturnType<typeof fromRows>) =>
  (Array.isArray(m) ? m : toRows(m)).map((row) => row.map(([j, v]) => [j, toNumber(v)]));

describe('stake and permits', () => {
  it('normalises raw stake in I64F64 and narrows with truncation', () => {
    const params = { ownerUid: null, stakeThreshold: 0n } as const;
    expect(normalizedStake(params as never, [1n, 2n, 3n, 4n])).toEqual([
      429496729n,
      858993459n,
      1288490188n,
      1717986918n,
    ]);
  });

  it('zeroes stake below the threshold except for the subnet owner', () => {
    const params = { ownerUid: 0, stakeThreshold: 10n } as const;
    const s = normalizedStake(params as never, [5n, 5n, 10n]);
    expect(s[1]).toBe(ZERO);
    expect(s[0]! > ZERO && s[2]! > ZERO).toBe(true);
  });

  it('grants top-k permits to non-zero stake; among ties the lower uid loses', () => {
    expect(isTopkNonzero([f(0.5), f(0.5), f(0.5), ZERO], 2)).toEqual([false, true, true, false]);
    expect(isTopkNonzero([f(0.1), ZERO], 5)).toEqual([true, false]); // n < k: nobody cleared, zeros still excluded
  });
});

describe('weights preprocessing', () => {
  it('masks self-weights except the owner', () => {
    const m: SparseMatrix = [
      [
        [0, ONE],
        [1, ONE],
      ],
      [[1, ONE]],
    ];
    expect(toRows(maskDiag(S(m), null))).toEqual([[[1, ONE]], []]);
    expect(toRows(maskDiag(S(m), 1))).toEqual([[[1, ONE]], [[1, ONE]]]);
  });

  it('drops weights set at or before the target registered', () => {
    const m: SparseMatrix = [
      [
        [1, ONE],
        [2, ONE],
      ],
    ];
    expect(toRows(vecMask(S(m), [10], [0, 10, 9], (u, r) => u <= r))).toEqual([[[2, ONE]]]);
  });

  it('row-normalises and leaves all-zero rows alone', () => {
    const m: SparseMatrix = [
      [
        [1, fromInt(1)],
        [2, fromInt(3)],
      ],
      [[1, ZERO]],
    ];
    expect(values(rowNormalize(S(m)))).toEqual([
      [
        [1, 0.25],
        [2, 0.75],
      ],
      [[1, 0]],
    ]);
  });

  it('max-upscales submitted weights with rounding: [40,30,20,10] -> [65535,49151,32768,16384]', () => {
    expect(vecMaxUpscaleToU16([40, 30, 20, 10].map(fromInt))).toEqual([65535, 49151, 32768, 16384]);
  });
});

describe('stake-weighted median', () => {
  const stake = normalize([f(0.3), f(0.3), f(0.4)]);
  const score = [f(0.1), f(0.5), f(0.9)];
  const idx = [0, 1, 2];
  const sumStake = stake.reduce((a, b) => a + b, 0n);

  it('picks the largest score backed by at least kappa of stake', () => {
    expect(weightedMedian(stake, score, idx, sumStake - f(0.5), ZERO, sumStake)).toBe(score[1]);
    expect(weightedMedian(stake, score, idx, sumStake - f(0.35), ZERO, sumStake)).toBe(score[2]);
  });

  it('gives the maximum at kappa = 0 and the minimum at kappa = 1', () => {
    expect(weightedMedian(stake, score, idx, sumStake, ZERO, sumStake)).toBe(score[2]);
    expect(weightedMedian(stake, score, idx, ZERO, ZERO, sumStake)).toBe(score[0]);
  });

  it('per column counts a missing entry as 0 and ignores zero-stake rows', () => {
    const weights: SparseMatrix = [[[0, f(0.8)]], [[1, f(1)]], [[0, f(1)]]];
    const c = weightedMedianCol([f(0.3), f(0.7), ZERO], S(weights), 2, u16Proportion(32767));
    expect(c).toEqual([ZERO, ONE]); // column 0: 70 % of stake gave it 0
  });

  it('accepts exactly half the stake at the default kappa but not at kappa 32768', () => {
    const weights: SparseMatrix = [[[0, ONE]], [[1, ONE]]];
    const half = [ONE >> 1n, ONE >> 1n];
    expect(weightedMedianCol(half, S(weights), 2, u16Proportion(32767))).toEqual([ONE, ONE]);
    expect(weightedMedianCol(half, S(weights), 2, u16Proportion(32768))).toEqual([ZERO, ZERO]);
  });
});

describe('clipping, interpolation, bonds', () => {
  it('clips to consensus and drops entries above a zero consensus', () => {
    const m: SparseMatrix = [
      [
        [0, f(0.6)],
        [1, f(0.4)],
      ],
      [[1, ZERO]],
    ];
    expect(values(colClip(S(m), [f(0.5), ZERO]))).toEqual([[[0, 0.5]], [[1, 0]]]);
  });

  it('interpolates W -> Wc by beta, keeping only positive entries in between', () => {
    const w: SparseMatrix = [
      [
        [0, f(0.5)],
        [1, ZERO],
      ],
    ];
    const wc: SparseMatrix = [[[0, f(0.25)]]];
    expect(interpolate(S(w), S(wc), 2, ZERO)).toEqual(S(w));
    expect(interpolate(S(w), S(wc), 2, ONE)).toEqual(S(wc));
    expect(values(interpolate(S(w), S(wc), 2, f(0.5)))).toEqual([[[0, 0.375]]]);
  });

  it('column-normalises and column-max-upscales', () => {
    const m: SparseMatrix = [
      [[0, f(1)]],
      [
        [0, f(3)],
        [1, ZERO],
      ],
    ];
    expect(values(colNormalize(S(m), 2))).toEqual([
      [[0, 0.25]],
      [
        [0, 0.75],
        [1, 0],
      ],
    ]);
    expect(values(colMaxUpscale(S(m), 2))[0]![0]![1]).toBeCloseTo(1 / 3, 9);
  });

  it('EMA (constant alpha) decays old bonds the row no longer weights', () => {
    const out = matEma(S([[[1, ONE]], []]), S([[[0, ONE]], []]), f(0.25));
    expect(values(out)).toEqual([
      [
        [0, 0.75],
        [1, 0.25],
      ],
      [],
    ]);
  });

  it('EMA (per-entry alpha) drops old bonds the row omits but decays explicit zeros', () => {
    const old: SparseMatrix = [
      [
        [0, ONE],
        [1, ONE],
      ],
    ];
    const out = matEmaAlpha(S([[[1, ZERO]]]), S(old), () => f(0.25));
    expect(values(out)).toEqual([[[1, 0.75]]]);
  });

  it('liquid alpha: agreeing with consensus gives ~0.1013, disagreeing fully ~0.2987 (bounds 0.1/0.3)', () => {
    const low = u16Proportion(6553);
    const high = u16Proportion(19660);
    const steep = fromInt(1000);
    expect(toNumber(liquidAlphaSigmoid(f(0.5), f(0.5), ZERO, low, high, steep))).toBeCloseTo(0.1013, 4);
    expect(toNumber(liquidAlphaSigmoid(ZERO, ONE, ZERO, low, high, steep))).toBeCloseTo(0.2987, 4);
  });
});
