/**
 * One epoch of subtensor's Yuma consensus (HEAD `epoch_mechanism`, the sparse production path), step by
 * step as in SPEC §3. Pure: the same inputs give the same bits on every machine.
 */
import {
  type Fixed,
  ZERO,
  add,
  fixed64To32,
  fromInt,
  fromInt64,
  proportionToU16,
  ratioTimesRao,
  safeDiv64,
  u16Proportion,
} from './fixed.ts';
import { isTopkNonzero, isZero, maskVector, normalize, normalizeWithSum, sum } from './math.ts';
import {
  type Sparse,
  colClip,
  fromU16,
  interpolate,
  maskDiag,
  maskRows,
  matmul,
  rowNormalize,
  rowSum,
  scalarVecMask,
  toU16,
  vecMask,
  weightedMedianCol,
} from './sparse.ts';
import { yuma2Bonds, yuma3Bonds } from './bonds.ts';
import type { EpochInputs, EpochResult, YumaParams } from './types.ts';

const NO_COMMIT = Number.MAX_SAFE_INTEGER;

/** §3.2: threshold-filtered stake, normalised in I64F64, narrowed to I32F32. */
export function normalizedStake(params: YumaParams, rawStake: readonly bigint[]): Fixed[] {
  const filtered = rawStake.map((s, uid) => (params.ownerUid !== uid && s < params.stakeThreshold ? 0n : fromInt64(s)));
  let total = 0n;
  for (const s of filtered) total += s;
  const normalized = total === 0n ? filtered : filtered.map((s) => safeDiv64(s, total));
  return normalized.map(fixed64To32);
}

function forceOwner(permits: boolean[], ownerUid: number | null): boolean[] {
  const out = permits.slice();
  if (ownerUid !== null && ownerUid < out.length) out[ownerUid] = true;
  return out;
}

export function runEpoch(params: YumaParams, inputs: EpochInputs): EpochResult {
  const n = inputs.stake.length;
  const { currentBlock, lastUpdate, blockAtRegistration } = inputs;

  // 3.1 Activity.
  const inactive = lastUpdate.map((updated) => updated + params.activityCutoff < currentBlock);
  const active = inactive.map((b) => !b);

  // 3.2 Stake.
  const stake = normalizedStake(params, inputs.stake);

  // 3.3 Permits: this epoch masks with the previous permits; the new ones take effect next epoch.
  const permits = forceOwner(inputs.validatorPermit, params.ownerUid);
  const forbids = permits.map((p) => !p);
  const newPermits = forceOwner(isTopkNonzero(stake, params.maxAllowedValidators), params.ownerUid);

  // 3.4 Active stake.
  const activeStake = normalize(maskVector(forbids, maskVector(inactive, stake)));

  // 3.5 Weights: permit rows, self-weights, outdated entries, commit-reveal, row normalisation.
  let weights = fromU16(inputs.weights, n, fromInt);
  weights = maskRows(forbids, weights);
  weights = maskDiag(weights, params.ownerUid);
  weights = vecMask(weights, lastUpdate, blockAtRegistration, (updated, registered) => updated <= registered);
  if (params.commitRevealMasking) {
    const commits = (inputs.commitBlocks ?? []).map((c) => c ?? NO_COMMIT);
    while (commits.length < n) commits.push(NO_COMMIT);
    weights = vecMask(weights, commits, blockAtRegistration, (commit, registered) => commit < registered);
  }
  weights = rowNormalize(weights);

  // 3.6-3.7 Consensus, clipping, validator trust.
  const consensus = weightedMedianCol(activeStake, weights, n, u16Proportion(params.kappa));
  const clipped = colClip(weights, consensus);
  const validatorTrust = rowSum(clipped);

  // 3.8 Incentive.
  const incentive = normalize(matmul(clipped, activeStake, n));

  // 3.9-3.10 Bonds penalty, bonds and dividends.
  const weightsForBonds = interpolate(weights, clipped, n, u16Proportion(params.bondsPenalty));
  const lastTempo =
    params.lastMechanismStepBlock === 0 ? Math.max(0, currentBlock - params.tempo) : params.lastMechanismStepBlock + 1;
  const maskFreshRegistrations = (m: Sparse) =>
    scalarVecMask(m, lastTempo, blockAtRegistration, (tempoBlock, registered) => tempoBlock <= registered);
  const { dividends, bondsToStore } = params.yuma3
    ? yuma3Bonds(
        params,
        n,
        weightsForBonds,
        maskFreshRegistrations(fromU16(inputs.bonds, n, u16Proportion)),
        activeStake,
        incentive,
        consensus,
      )
    : yuma2Bonds(
        params,
        n,
        weightsForBonds,
        maskFreshRegistrations(fromU16(inputs.bonds, n, fromInt)),
        activeStake,
        incentive,
      );

  // 3.11 Emission: each side normalised by the sum of incentive + dividends; fallback to stake.
  const combined = incentive.map((inc, i) => add(inc, dividends[i] ?? ZERO));
  const emissionSum = sum(combined);
  const serverShare = normalizeWithSum(incentive, emissionSum);
  let validatorShare = normalizeWithSum(dividends, emissionSum);
  let combinedShare = normalize(combined);
  if (emissionSum === ZERO) {
    const fallback = isZero(activeStake) ? stake : activeStake;
    validatorShare = fallback;
    combinedShare = fallback;
  }
  const rao = params.raoEmission;

  // 3.12 Outputs.
  const bonds = toU16(bondsToStore, (i) => newPermits[i] === true, proportionToU16);
  return {
    n,
    bits: { stake, activeStake, consensus, incentive, dividends, validatorTrust },
    active,
    consensusU16: consensus.map(proportionToU16),
    incentiveU16: incentive.map(proportionToU16),
    dividendsU16: dividends.map(proportionToU16),
    validatorTrustU16: validatorTrust.map(proportionToU16),
    stakeU16: stake.map(proportionToU16),
    serverEmission: serverShare.map((x) => ratioTimesRao(x, rao)),
    validatorEmission: validatorShare.map((x) => ratioTimesRao(x, rao)),
    emission: combinedShare.map((x) => ratioTimesRao(x, rao)),
    newValidatorPermit: newPermits,
    bonds,
  };
}
