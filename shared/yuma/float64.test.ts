/** The float64 port the benchmarks compare against computes the same thing, within what SPEC §2 reports. */
import { describe, expect, it } from 'vitest';
import { runEpoch } from './epoch.ts';
import { runEpochFloat64 } from './float64.ts';
import { toNumber } from './fixed.ts';
import { syntheticEpoch } from './synthetic.ts';

describe('float64 reference port', () => {
  for (const spec of [
    { n: 64, density: 'dense' as const },
    { n: 64, density: 'sparse' as const },
    { n: 48, density: 'dense' as const, yuma3: true },
  ]) {
    it(`agrees with the exact engine within float tolerance (${JSON.stringify(spec)})`, () => {
      const { params, inputs } = syntheticEpoch(spec);
      const exact = runEpoch(params, inputs);
      const float = runEpochFloat64(params, inputs);
      const maxDev = (a: bigint[], b: ArrayLike<number>) => Math.max(...a.map((x, i) => Math.abs(toNumber(x) - b[i]!)));
      // Each truncation costs under one ulp (2^-32) and sums collect one per term: bound by two ulps per uid.
      const tol = spec.n * 2 ** -31;
      expect(maxDev(exact.bits.consensus, float.consensus)).toBeLessThan(tol);
      expect(maxDev(exact.bits.incentive, float.incentive)).toBeLessThan(tol);
      expect(maxDev(exact.bits.validatorTrust, float.validatorTrust)).toBeLessThan(tol);
      // Yuma 3 with liquid alpha uses per-entry alphas the float port does not model; compare dividends on Yuma 1/2.
      if (!params.yuma3) expect(maxDev(exact.bits.dividends, float.dividends)).toBeLessThan(tol);
      const raoDev = Math.max(...exact.emission.map((x, i) => Math.abs(Number(x) - float.emission[i]!)));
      if (!params.yuma3) expect(raoDev).toBeLessThanOrEqual(Math.ceil(tol * 1e9) + 1);
    });
  }
});
