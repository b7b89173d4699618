/** Invariants of the epoch that must hold for any input (fast-check). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ONE, ZERO, u16Proportion } from './fixed.ts';
import { normalize, sum, weightedMedian } from './math.ts';
import { colClip, fromRows, rowNormalize, toRows, u16ToRows, weightedMedianCol } from './sparse.ts';
import { runEpoch } from './epoch.ts';
import type { EpochInputs, EpochResult, U16Row, YumaParams } from './types.ts';

const baseParams: YumaParams = {
  kappa: 32767,
  bondsPenalty: 65535,
  bondsMovingAverage: 900_000,
  yuma3: false,
  liquidAlpha: false,
  alphaLow: 45875,
  alphaHigh: 58982,
  alphaSigmoidSteepness: 1000,
  maxAllowedValidators: 64,
  stakeThreshold: 0n,
  activityCutoff: 5000,
  tempo: 360,
  lastMechanismStepBlock: 0,
  ownerUid: null,
  raoEmission: 1_000_000_000n,
  commitRevealMasking: false,
};

const paramsArb = fc.record({
  kappa: fc.constantFrom(32767, 32768, 45000, 20000),
  bondsPenalty: fc.constantFrom(0, 32768, 65535),
  bondsMovingAverage: fc.constantFrom(900_000, 975_000, 500_000),
  yuma3: fc.boolean(),
  liquidAlpha: fc.boolean(),
  alphaLow: fc.constant(6553),
  alphaHigh: fc.constant(19660),
});

const rowArb = (n: number) =>
  fc
    .uniqueArray(fc.integer({ min: 0, max: n - 1 }), { maxLength: n })
    .chain((cols) =>
      fc.tuple(
        fc.constant(cols.sort((a, b) => a - b)),
        fc.array(fc.integer({ min: 0, max: 65535 }), { minLength: cols.length, maxLength: cols.length }),
      ),
    )
    .map(([cols, vals]) => cols.map((j, k) => [j, vals[k]!] as const));

/** A random but self-consistent epoch: registered before the weights were set, active, with prior bonds. */
const epochArb = fc.integer({ min: 2, max: 7 }).chain((n) =>
  fc.record({
    params: paramsArb,
    inputs: fc.record({
      currentBlock: fc.constant(1000),
      stake: fc.array(fc.bigInt({ min: 0n, max: 1_000_000n }), { minLength: n, maxLength: n }),
      validatorPermit: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
      lastUpdate: fc.array(fc.integer({ min: 500, max: 1000 }), { minLength: n, maxLength: n }),
      blockAtRegistration: fc.array(fc.integer({ min: 0, max: 600 }), { minLength: n, maxLength: n }),
      weights: fc.array(rowArb(n), { minLength: n, maxLength: n }),
      bonds: fc.array(rowArb(n), { minLength: n, maxLength: n }),
    }),
  }),
);

const run = (p: Partial<YumaParams>, inputs: EpochInputs) => runEpoch({ ...baseParams, ...p }, inputs);
const nonZero = (v: bigint[]) => v.filter((x) => x !== ZERO).length;

/** Sum of a normalised vector: truncating division loses less than one ulp per non-zero entry. */
function expectNormalised(v: bigint[]) {
  const total = sum(v);
  if (total === ZERO) return;
  expect(total <= ONE).toBe(true);
  expect(ONE - total < BigInt(Math.max(1, nonZero(v)))).toBe(true);
}

describe('Yuma invariants', () => {
  it('incentive and dividends each sum to 1 (less than one ulp short per entry) or are all zero', () => {
    fc.assert(
      fc.property(epochArb, ({ params, inputs }) => {
        const r = run(params, inputs);
        expectNormalised(r.bits.incentive);
        expectNormalised(r.bits.dividends);
      }),
      { numRuns: 300 },
    );
  });

  it('emission never exceeds the amount distributed; the rounding dust is below one rao per uid', () => {
    fc.assert(
      fc.property(epochArb, ({ params, inputs }) => {
        const r = run(params, inputs);
        const paid = [...r.serverEmission, ...r.validatorEmission].reduce((a, b) => a + b, 0n);
        const total = r.emission.reduce((a, b) => a + b, 0n);
        for (const x of [paid, total]) {
          if (x === 0n) continue; // no stake at all: nothing to pay
          expect(x <= baseParams.raoEmission).toBe(true);
          expect(baseParams.raoEmission - x <= BigInt(2 * r.n + 2)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('clipped weights never exceed consensus', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 8 })
          .chain((n) =>
            fc.tuple(
              fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: n, maxLength: n }),
              fc.array(rowArb(n), { minLength: n, maxLength: n }),
              fc.integer({ min: 0, max: 65535 }),
            ),
          ),
        ([stakeInts, rows, kappa]) => {
          const n = stakeInts.length;
          const stake = normalize(stakeInts.map((s) => BigInt(s) << 32n));
          const w = rowNormalize(fromRows(rows.map((row) => row.map(([j, v]) => [j, BigInt(v) << 32n] as const))));
          const consensus = weightedMedianCol(stake, w, n, u16Proportion(kappa));
          for (const row of toRows(colClip(w, consensus)))
            for (const [j, v] of row) expect(v <= consensus[j]!).toBe(true);
          // The scratch-buffer median is the reference weighted_median, column by column.
          const voters = stake.flatMap((s, i) => (s > ZERO ? [i] : []));
          const useStake = normalize(voters.map((i) => stake[i]!));
          const total = sum(useStake);
          const dense = toRows(w);
          consensus.forEach((c, j) => {
            const score = voters.map((i) => dense[i]!.find(([col]) => col === j)?.[1] ?? ZERO);
            const idx = useStake.map((_, k) => k);
            expect(c).toBe(weightedMedian(useStake, score, idx, total - u16Proportion(kappa), ZERO, total));
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('permuting uids permutes every output', () => {
    fc.assert(
      fc.property(
        epochArb.chain((e) =>
          fc.tuple(
            fc.constant(e),
            fc.shuffledSubarray([...e.inputs.stake.keys()], { minLength: e.inputs.stake.length }),
          ),
        ),
        ([{ params, inputs }, perm]) => {
          // perm[newUid] = oldUid. Ties in the top-k permit cut depend on uid order, so give everyone room.
          const p = { ...params, maxAllowedValidators: 64 };
          const inv: number[] = [];
          perm.forEach((old, neu) => (inv[old] = neu));
          const moveRow = (row: U16Row) => row.map(([j, v]) => [inv[j]!, v] as const).sort((a, b) => a[0] - b[0]);
          const permuted: EpochInputs = {
            currentBlock: inputs.currentBlock,
            stake: perm.map((o) => inputs.stake[o]!),
            validatorPermit: perm.map((o) => inputs.validatorPermit[o]!),
            lastUpdate: perm.map((o) => inputs.lastUpdate[o]!),
            blockAtRegistration: perm.map((o) => inputs.blockAtRegistration[o]!),
            weights: perm.map((o) => moveRow((inputs.weights as U16Row[])[o]!)),
            bonds: perm.map((o) => moveRow((inputs.bonds as U16Row[])[o]!)),
          };
          const a = run(p, inputs);
          const b = run(p, permuted);
          const pick = <T>(v: T[]) => perm.map((o) => v[o]);
          expect(b.bits).toEqual({
            stake: pick(a.bits.stake),
            activeStake: pick(a.bits.activeStake),
            consensus: pick(a.bits.consensus),
            incentive: pick(a.bits.incentive),
            dividends: pick(a.bits.dividends),
            validatorTrust: pick(a.bits.validatorTrust),
          });
          expect(b.emission).toEqual(pick(a.emission));
          expect(b.newValidatorPermit).toEqual(pick(a.newValidatorPermit));
          const aBonds = u16ToRows(a.bonds);
          expect(u16ToRows(b.bonds)).toEqual(perm.map((o) => moveRow(aBonds[o]!)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a validator with zero stake changes nothing, whatever weights it sets', () => {
    fc.assert(
      fc.property(
        epochArb,
        fc.nat(),
        fc.array(fc.integer({ min: 0, max: 65535 }), { minLength: 7, maxLength: 7 }),
        ({ params, inputs }, pick, vals) => {
          const n = inputs.stake.length;
          const z = pick % n;
          // Yuma 3 bonds are not stake-weighted, so there the claim needs the (consistent) state of a zero-stake
          // validator: no permit, because permits follow stake. In Yuma 1/2 it holds even with a permit.
          const p = params;
          const base: EpochInputs = { ...inputs, stake: inputs.stake.map((s, i) => (i === z ? 0n : s)) };
          if (params.yuma3) base.validatorPermit = base.validatorPermit.map((x, i) => (i === z ? false : x));
          base.bonds = (base.bonds as U16Row[]).map((row, i) => (i === z ? [] : row));
          const other: EpochInputs = {
            ...base,
            weights: (base.weights as U16Row[]).map((row, i) =>
              i === z ? vals.slice(0, n).map((v, j) => [j, v] as const) : row,
            ),
          };
          const a = run(p, base);
          const b = run(p, other);
          const others = (r: EpochResult) => ({
            consensus: r.bits.consensus,
            incentive: r.bits.incentive,
            dividends: r.bits.dividends,
            emission: r.emission,
            trust: r.bits.validatorTrust.filter((_, i) => i !== z),
            bonds: u16ToRows(r.bonds).filter((_, i) => i !== z),
          });
          expect(others(b)).toEqual(others(a));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a colluding minority below kappa cannot lift its miner's consensus above what honest validators give it", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 5 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 8, maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 65535 }), { minLength: 8, maxLength: 8 }),
        (honest, cabal, stakeSeed, honestWeightSeed) => {
          const nv = honest + cabal;
          const miners = 2;
          const n = nv + miners;
          const target = nv; // the cabal's miner
          const honestStake = stakeSeed.slice(0, honest).map((s) => BigInt(s) * 1000n);
          const honestTotal = honestStake.reduce((a, b) => a + b, 0n);
          // Cabal total strictly below 45 % of all stake, i.e. well under kappa = 0.49999.
          const cabalEach = (honestTotal * 45n) / 55n / BigInt(cabal) - 1n;
          const stake = [...honestStake, ...new Array<bigint>(cabal).fill(cabalEach), 0n, 0n];
          const weights: U16Row[] = [];
          for (let i = 0; i < honest; i++)
            weights.push([
              [nv, honestWeightSeed[i]!],
              [nv + 1, 65535],
            ]);
          for (let i = 0; i < cabal; i++) weights.push([[target, 65535]]);
          for (let i = 0; i < miners; i++) weights.push([]);
          const inputs: EpochInputs = {
            currentBlock: 1000,
            stake,
            validatorPermit: stake.map((_, i) => i < nv),
            lastUpdate: new Array(n).fill(1000),
            blockAtRegistration: new Array(n).fill(0),
            weights,
            bonds: new Array(n).fill([]),
          };
          const r = run({}, inputs);
          const honestRows = toRows(
            rowNormalize(
              fromRows(weights.slice(0, honest).map((row) => row.map(([j, v]) => [j, BigInt(v) << 32n] as const))),
            ),
          );
          const honestMax = honestRows.reduce((m, row) => {
            const v = row.find(([j]) => j === target)?.[1] ?? ZERO;
            return v > m ? v : m;
          }, ZERO);
          expect(r.bits.consensus[target]! <= honestMax).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
