/**
 * Bonds and dividends (SPEC §4): the Yuma 1/2 path (stake-weighted, column-normalised bonds with a constant
 * EMA) and the Yuma 3 path (per-pair bond fractions, optional liquid alpha).
 */
import {
  type Fixed,
  ONE,
  ZERO,
  add,
  clamp,
  expSafe,
  fixed64To32,
  fromInt,
  fromInt64,
  mul,
  safeDiv64,
  saturatingDiv,
  sub,
  u16Proportion,
} from './fixed.ts';
import { normalize, vecMul } from './math.ts';
import {
  type Sparse,
  colMaxUpscale,
  colNormalize,
  matEma,
  matEmaAlpha,
  matVecMul,
  matmulTranspose,
  rowHadamard,
  rowSum,
} from './sparse.ts';
import type { YumaParams } from './types.ts';

export interface BondsOutcome {
  dividends: Fixed[];
  /** Bonds in the form they are stored (Yuma 1/2: column max-upscaled; Yuma 3: raw fractions). */
  bondsToStore: Sparse;
}

/** alpha = 1 - bondsMovingAverage / 1e6, computed in I64F64 and narrowed to I32F32 (SPEC §2 rule 6). */
export function bondsMovingAverageAlpha(bondsMovingAverage: number): Fixed {
  const ratio64 = safeDiv64(fromInt64(BigInt(bondsMovingAverage)), fromInt64(1_000_000n));
  return sub(ONE, fixed64To32(ratio64));
}

/** Yuma 1/2: previous bonds are stored column max-upscaled u16 integers. */
export function yuma2Bonds(
  params: YumaParams,
  n: number,
  weightsForBonds: Sparse,
  previousBonds: Sparse,
  activeStake: Fixed[],
  incentive: Fixed[],
): BondsOutcome {
  const bonds = colNormalize(previousBonds, n);
  const delta = colNormalize(rowHadamard(weightsForBonds, activeStake), n);
  const ema = colNormalize(matEma(delta, bonds, bondsMovingAverageAlpha(params.bondsMovingAverage)), n);
  const dividends = normalize(matmulTranspose(ema, incentive));
  return { dividends, bondsToStore: colMaxUpscale(ema, n) };
}

/**
 * Liquid alpha 2 (`liquid_alpha_sigmoid`): the EMA coefficient grows with how far a validator's weight moves
 * against consensus ("buy") or away from its bond ("sell").
 */
export function liquidAlphaSigmoid(
  consensus: Fixed,
  weight: Fixed,
  bond: Fixed,
  alphaLow: Fixed,
  alphaHigh: Fixed,
  steepness: Fixed,
): Fixed {
  const diffBuy = clamp(sub(weight, consensus), ZERO, ONE);
  const diffSell = clamp(sub(bond, weight), ZERO, ONE);
  const diff = weight >= bond ? diffBuy : diffSell;
  const exponent = mul(saturatingDiv(steepness, fromInt(-100)), sub(diff, ONE >> 1n));
  const sigmoid = saturatingDiv(ONE, add(ONE, expSafe(exponent)));
  const alpha = add(alphaLow, mul(sigmoid, sub(alphaHigh, alphaLow)));
  return clamp(alpha, alphaLow, alphaHigh);
}

/** Yuma 3: previous bonds are u16 fractions of 1; dividends weight bond shares by active stake. */
export function yuma3Bonds(
  params: YumaParams,
  n: number,
  weightsForBonds: Sparse,
  previousBonds: Sparse,
  activeStake: Fixed[],
  incentive: Fixed[],
  consensus: Fixed[],
): BondsOutcome {
  let ema: Sparse;
  if (params.liquidAlpha && consensus.some((c) => c !== ZERO)) {
    const low = u16Proportion(params.alphaLow);
    const high = u16Proportion(params.alphaHigh);
    const steepness = fromInt(params.alphaSigmoidSteepness);
    ema = matEmaAlpha(weightsForBonds, previousBonds, (j, weight, bond) =>
      liquidAlphaSigmoid(consensus[j] ?? ZERO, weight, bond, low, high, steepness),
    );
  } else {
    ema = matEma(weightsForBonds, previousBonds, bondsMovingAverageAlpha(params.bondsMovingAverage));
  }
  const shares = rowSum(matVecMul(colNormalize(ema, n), incentive));
  const dividends = normalize(vecMul(shares, activeStake));
  return { dividends, bondsToStore: ema };
}
