/**
 * Vector helpers of subtensor's epoch (`epoch/math.rs`) over I32F32 bits, and the reference `weighted_median`.
 * The sparse-matrix helpers are in sparse.ts.
 */
import { type Fixed, ZERO, add, checkedMul, mul, safeDiv, sub, fromInt, U16_MAX_FIXED, round, toU16 } from './fixed.ts';

export function sum(values: readonly Fixed[]): Fixed {
  let s = ZERO;
  for (const v of values) s = add(s, v);
  return s;
}

/** `inplace_normalize`: divide by the sum unless the sum is zero. Returns a new vector. */
export function normalize(values: readonly Fixed[]): Fixed[] {
  return normalizeWithSum(values, sum(values));
}

/** `inplace_normalize_i32f32_with_sum`. */
export function normalizeWithSum(values: readonly Fixed[], total: Fixed): Fixed[] {
  if (total === ZERO) return values.slice();
  return values.map((v) => safeDiv(v, total));
}

export function isZero(values: readonly Fixed[]): boolean {
  return sum(values) === ZERO;
}

/** `inplace_mask_vector`: zero where mask is true. */
export function maskVector(mask: readonly boolean[], values: readonly Fixed[]): Fixed[] {
  return values.map((v, i) => (mask[i] ? ZERO : v));
}

/**
 * `is_topk_nonzero`: true where the value is non-zero, then, if n >= k, the n - k smallest are cleared using a
 * stable ascending sort (so among equal values the lower index is cleared first).
 */
export function isTopkNonzero(values: readonly Fixed[], k: number): boolean[] {
  const n = values.length;
  const result = values.map((v) => v !== ZERO);
  if (n < k) return result;
  const order = values.map((_, i) => i);
  order.sort((a, b) => (values[a]! < values[b]! ? -1 : values[a]! > values[b]! ? 1 : a - b));
  for (let r = 0; r < n - k; r++) result[order[r]!] = false;
  return result;
}

/** `vec_mul`: element-wise product with `checked_mul(...).unwrap_or_default()`. */
export function vecMul(a: readonly Fixed[], b: readonly Fixed[]): Fixed[] {
  const n = Math.min(a.length, b.length);
  const out: Fixed[] = [];
  for (let i = 0; i < n; i++) out.push(checkedMul(a[i]!, b[i]!) ?? ZERO);
  return out;
}

/**
 * `weighted_median`: deterministic quickselect with the pivot at the middle of the partition. Returns the
 * largest score x such that the stake of entries scoring >= x exceeds the minority line; ties at the exact
 * boundary resolve upward.
 */
export function weightedMedian(
  stake: readonly Fixed[],
  score: readonly Fixed[],
  partition: readonly number[],
  minority: Fixed,
  partitionLo: Fixed,
  partitionHi: Fixed,
): Fixed {
  if (stake.length !== score.length) return ZERO;
  let current = partition.slice();
  let lo = partitionLo;
  let hi = partitionHi;
  const limit = partition.length;
  for (let iteration = 0; iteration <= limit; iteration++) {
    const n = current.length;
    if (n === 0) return ZERO;
    if (n === 1) return score[current[0]!] ?? ZERO;
    const pivot = score[current[n >> 1]!] ?? ZERO;
    let loStake = ZERO;
    let hiStake = ZERO;
    const lower: number[] = [];
    const upper: number[] = [];
    for (const idx of current) {
      const s = score[idx] ?? ZERO;
      if (s === pivot) continue;
      if (s < pivot) {
        loStake = add(loStake, stake[idx] ?? ZERO);
        lower.push(idx);
      } else {
        hiStake = add(hiStake, stake[idx] ?? ZERO);
        upper.push(idx);
      }
    }
    if (minority < add(lo, loStake) && lower.length > 0) {
      current = lower;
      hi = add(lo, loStake);
    } else if (sub(hi, hiStake) <= minority && upper.length > 0) {
      current = upper;
      lo = sub(hi, hiStake);
    } else {
      return pivot;
    }
  }
  return ZERO;
}

/**
 * `weighted_median_col` (dense): the same median, but stake is re-normalised per column over the rows with
 * positive stake, and `minority = stake_sum - majority`.
 */
export function weightedMedianColDense(
  stake: readonly Fixed[],
  score: readonly (readonly Fixed[])[],
  majority: Fixed,
): Fixed[] {
  const columns = score[0]?.length ?? 0;
  const out: Fixed[] = [];
  for (let c = 0; c < columns; c++) {
    const useStake: Fixed[] = [];
    const useScore: Fixed[] = [];
    for (let r = 0; r < stake.length; r++) {
      const st = stake[r]!;
      if (st <= ZERO) continue;
      const row = score[r];
      if (row && row.length === columns) {
        useStake.push(st);
        useScore.push(row[c]!);
      } else {
        useStake.push(ZERO);
        useScore.push(ZERO);
      }
    }
    if (useStake.length === 0) {
      out.push(ZERO);
      continue;
    }
    const normalized = normalize(useStake);
    const stakeSum = sum(normalized);
    out.push(
      weightedMedian(
        normalized,
        useScore,
        normalized.map((_, i) => i),
        sub(stakeSum, majority),
        ZERO,
        stakeSum,
      ),
    );
  }
  return out;
}

/**
 * `vec_max_upscale_to_u16`: scale so the largest entry becomes 65535, rounding half away from zero. Two
 * fixed-point paths depending on whether the max exceeds 32768, exactly as subtensor chooses them.
 */
export function vecMaxUpscaleToU16(values: readonly Fixed[]): number[] {
  if (values.length === 0) return [];
  let maxValue = values[0]!;
  for (const v of values) if (v > maxValue) maxValue = v;
  if (maxValue === ZERO) return values.map((v) => toU16(mul(v, U16_MAX_FIXED)));
  if (maxValue > fromInt(32768)) {
    const scale = safeDiv(U16_MAX_FIXED, maxValue);
    return values.map((v) => toU16(round(mul(v, scale))));
  }
  return values.map((v) => toU16(round(safeDiv(mul(v, U16_MAX_FIXED), maxValue))));
}
