/**
 * Seeded synthetic epochs for benchmarks: n uids, the first quarter validators with permits and stake, the rest
 * miners; each validator weights every miner (dense) or a random 10 % of them (sparse), and holds the bonds a
 * previous epoch would have left. Pure and deterministic, so Node and a browser worker build identical inputs.
 */
import { runEpoch } from './epoch.ts';
import type { EpochInputs, U16Matrix, YumaParams } from './types.ts';

export interface SyntheticSpec {
  n: number;
  density: 'dense' | 'sparse';
  yuma3?: boolean;
  seed?: number;
}

/** mulberry32: small, fast, good enough to spread benchmark inputs and repeatable test draws. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function syntheticParams(spec: SyntheticSpec): YumaParams {
  return {
    kappa: 32767,
    bondsPenalty: 65535,
    bondsMovingAverage: 900_000,
    yuma3: spec.yuma3 ?? false,
    liquidAlpha: spec.yuma3 ?? false,
    alphaLow: 6553,
    alphaHigh: 19660,
    alphaSigmoidSteepness: 1000,
    maxAllowedValidators: Math.max(1, spec.n >> 2),
    stakeThreshold: 0n,
    activityCutoff: 5000,
    tempo: 360,
    lastMechanismStepBlock: 0,
    ownerUid: null,
    raoEmission: 1_000_000_000n,
    commitRevealMasking: false,
  };
}

/** Inputs of the second epoch of a synthetic subnet (so bonds are realistic), and its params. */
export function syntheticEpoch(spec: SyntheticSpec): { params: YumaParams; inputs: EpochInputs } {
  const { n } = spec;
  const random = rng(spec.seed ?? 42);
  const validators = Math.max(1, n >> 2);
  const params = syntheticParams(spec);
  // Built directly in CSR form: at n = 4096 a tuple per entry would be millions of objects.
  const ptr = new Int32Array(n + 1);
  const col: number[] = [];
  const val: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i < validators) {
      for (let j = validators; j < n; j++) {
        if (spec.density === 'sparse' && random() >= 0.1) continue;
        col.push(j);
        val.push(1 + Math.floor(random() * 65535));
      }
    }
    ptr[i + 1] = col.length;
  }
  const weights: U16Matrix = { rows: n, ptr, col: Int32Array.from(col), val: Uint16Array.from(val) };
  const inputs: EpochInputs = {
    currentBlock: 720,
    stake: Array.from({ length: n }, (_, i) =>
      i < validators ? BigInt(1 + Math.floor(random() * 1e6)) * 1_000_000_000n : 0n,
    ),
    validatorPermit: Array.from({ length: n }, (_, i) => i < validators),
    lastUpdate: Array.from({ length: n }, (_, i) => (i < validators ? 700 : 0)),
    blockAtRegistration: new Array<number>(n).fill(0),
    weights,
    bonds: [],
  };
  // One epoch first, so the timed epoch starts from the bonds a running subnet would have.
  const first = runEpoch(params, { ...inputs, currentBlock: 360 });
  return { params, inputs: { ...inputs, bonds: first.bonds } };
}
