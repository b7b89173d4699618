/** Inputs and outputs of one Yuma epoch. Integers that can exceed 2^53 (stake, rao) are bigints. */
import type { Fixed } from './fixed.ts';

/** Subnet hyperparameters the epoch reads (SPEC §7), in their on-chain integer encodings. */
export interface YumaParams {
  /** Kappa as u16; the proportion is kappa/65535 (default 32767). */
  kappa: number;
  /** Bonds penalty beta as u16 (65535 = 1). */
  bondsPenalty: number;
  /** Bonds moving average in parts per million (900000 gives alpha = 0.1). */
  bondsMovingAverage: number;
  yuma3: boolean;
  liquidAlpha: boolean;
  /** Liquid alpha bounds as u16 proportions. */
  alphaLow: number;
  alphaHigh: number;
  /** i16; divided by 100 inside the sigmoid. */
  alphaSigmoidSteepness: number;
  maxAllowedValidators: number;
  /** Raw stake below this is treated as zero. */
  stakeThreshold: bigint;
  /** Already derived from the activity cutoff factor and tempo. */
  activityCutoff: number;
  tempo: number;
  lastMechanismStepBlock: number;
  ownerUid: number | null;
  /** Amount distributed by this epoch, in rao. */
  raoEmission: bigint;
  commitRevealMasking: boolean;
}

/** A sparse row of stored u16 values: [uid, value] in ascending uid order, explicit zeros allowed. */
export type U16Row = (readonly [uid: number, value: number])[];

/**
 * The same rows in compressed sparse row form: row i's entries are at [ptr[i], ptr[i+1]). Compact at any n
 * (no object per entry), which is what keeps a 4096-uid epoch out of the garbage collector's way.
 */
export interface U16Matrix {
  rows: number;
  ptr: Int32Array;
  col: Int32Array;
  val: Uint16Array;
}

export interface EpochInputs {
  currentBlock: number;
  /** Raw stake per UID (integers). */
  stake: bigint[];
  /** Permits granted by the previous epoch. */
  validatorPermit: boolean[];
  lastUpdate: number[];
  blockAtRegistration: number[];
  /** Stored (max-upscaled) u16 weights per validator row. */
  weights: U16Row[] | U16Matrix;
  /** Stored u16 bonds per validator row (previous epoch's output). */
  bonds: U16Row[] | U16Matrix;
  /** Earliest unexpired commit block per UID, or null; read only when commit-reveal masking is on. */
  commitBlocks?: (number | null)[];
}

export interface EpochResult {
  n: number;
  /** I32F32 bits, for hashing and exact comparison. */
  bits: {
    stake: Fixed[];
    activeStake: Fixed[];
    consensus: Fixed[];
    incentive: Fixed[];
    dividends: Fixed[];
    validatorTrust: Fixed[];
  };
  active: boolean[];
  consensusU16: number[];
  incentiveU16: number[];
  dividendsU16: number[];
  validatorTrustU16: number[];
  stakeU16: number[];
  serverEmission: bigint[];
  validatorEmission: bigint[];
  emission: bigint[];
  newValidatorPermit: boolean[];
  /** Bonds to store for the next epoch (rows of UIDs without a new permit are empty). */
  bonds: U16Matrix;
}
