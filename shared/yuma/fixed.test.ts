import { describe, expect, it } from 'vitest';
import {
  ONE,
  exp,
  expSafe,
  fromFloat,
  fromInt,
  mul,
  proportionToU16,
  ratioTimesRao,
  round,
  safeDiv,
  saturatingDiv,
  toNumber,
  u16Proportion,
} from './fixed.ts';
import { bondsMovingAverageAlpha } from './bonds.ts';

describe('I32F32 arithmetic rules (SPEC §2)', () => {
  it('multiplies with floor, toward minus infinity', () => {
    expect(mul(3n, ONE >> 1n)).toBe(1n); // 1.5 ulp floors to 1
    expect(mul(-3n, ONE >> 1n)).toBe(-2n); // -1.5 ulp floors to -2
  });

  it('divides with truncation toward zero, and safe_div gives 0 on /0 and overflow', () => {
    expect(safeDiv(fromInt(1), fromInt(3))).toBe(1431655765n); // 0.33333333325
    expect(safeDiv(fromInt(-1), fromInt(3))).toBe(-1431655765n);
    expect(safeDiv(fromInt(5), 0n)).toBe(0n);
    expect(safeDiv(fromInt(1 << 30), 1n)).toBe(0n); // overflow
    expect(saturatingDiv(fromInt(1 << 30), 1n)).toBe((1n << 63n) - 1n);
  });

  it('reads u16 proportions by truncating division: default kappa is just below one half', () => {
    expect(u16Proportion(32767)).toBe(2147450879n);
    expect(toNumber(u16Proportion(32767))).toBeLessThan(0.5);
    expect(u16Proportion(65535)).toBe(ONE);
  });

  it('writes ratios as floor(x * 65535)', () => {
    expect(proportionToU16(ONE)).toBe(65535);
    expect(proportionToU16(ONE - 1n)).toBe(65534);
    expect(proportionToU16(fromFloat(0.5))).toBe(32767);
  });

  it('derives alpha = 1 - 900000/1e6 through I64F64 as raw 429496730', () => {
    expect(bondsMovingAverageAlpha(900_000)).toBe(429496730n);
  });

  it('floors rao: 0.1 of 1e9 rao is 99 999 999 (test_10_graph)', () => {
    const tenth = safeDiv(fromInt(1), fromInt(10)); // a normalised 0.1 truncates to 0.09999999977
    expect(ratioTimesRao(tenth, 1_000_000_000n)).toBe(99_999_999n);
  });

  it('converts floats to nearest with ties to even, optionally through f32', () => {
    expect(fromFloat(0.5)).toBe(ONE >> 1n);
    expect(fromFloat(2 ** -33)).toBe(0n); // exact tie, rounds to even 0
    expect(fromFloat(3 * 2 ** -33)).toBe(2n); // tie between 1 and 2, rounds to even 2
    expect(fromFloat(0.51, { f32: true })).toBe(fromFloat(Math.fround(0.51)));
  });

  it('rounds half away from zero', () => {
    expect(round(fromFloat(2.5))).toBe(fromInt(3));
    expect(round(fromFloat(-2.5))).toBe(fromInt(-3));
    expect(round(fromFloat(2.4999))).toBe(fromInt(2));
  });
});

describe("substrate-fixed's exp", () => {
  it('is exact at 0 and returns the 23-bit constant at 1', () => {
    expect(exp(0n)).toBe(ONE);
    expect(exp(ONE)).toBe(22802600n << 9n); // floor(e * 2^23) = 22802600.69…
  });

  it('is accurate to about 1e-9 for |x| <= 5', () => {
    for (const x of [-5, -2.5, -0.5, 0.25, 2, 5]) {
      expect(Math.abs(toNumber(exp(fromFloat(x))!) - Math.exp(x)) / Math.exp(x)).toBeLessThan(1e-8);
    }
  });

  it('is about 0.8 % low at 20 (truncated series), and exp_safe clamps beyond', () => {
    const at20 = toNumber(exp(fromInt(20))!);
    expect(at20 / Math.exp(20)).toBeGreaterThan(0.99);
    expect(at20 / Math.exp(20)).toBeLessThan(0.995);
    expect(expSafe(fromInt(50))).toBe(exp(fromInt(20)));
    expect(expSafe(fromInt(-50))).toBe(exp(fromInt(-20)));
  });
});
