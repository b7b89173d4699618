import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { answerScore, ema, weightsFromScores } from './scoring.ts';

describe('validator scoring', () => {
  it('scores wrong, late or missing answers 0 and fast correct ones near 1', () => {
    expect(answerScore('wrong', 10, 1000)).toBe(0);
    expect(answerScore('timeout', 1000, 1000)).toBe(0);
    expect(answerScore('error', 10, 1000)).toBe(0);
    expect(answerScore('correct', 0, 1000)).toBe(1);
    expect(answerScore('correct', 1000, 1000)).toBe(0.5);
    expect(answerScore('correct', 100, 1000)).toBeGreaterThan(answerScore('correct', 500, 1000));
  });
  it('smooths with an EMA', () => {
    expect(ema(undefined, 1)).toBe(1);
    expect(ema(1, 0, 0.5)).toBe(0.5);
  });
  it('turns scores into u16 weights with the best at 65535', () => {
    expect(
      weightsFromScores(
        new Map([
          [3, 0.5],
          [1, 1],
          [2, 0],
        ]),
      ),
    ).toEqual({ uids: [1, 2, 3], values: [65535, 0, 32768] });
    fc.assert(
      fc.property(
        fc.dictionary(fc.integer({ min: 0, max: 4095 }).map(String), fc.double({ min: 0, max: 1, noNaN: true })),
        (d) => {
          const w = weightsFromScores(new Map(Object.entries(d).map(([k, v]) => [Number(k), v])));
          expect(w.values.every((v) => Number.isInteger(v) && v >= 0 && v <= 65535)).toBe(true);
          expect(w.uids).toEqual([...w.uids].sort((a, b) => a - b));
        },
      ),
    );
  });
});
