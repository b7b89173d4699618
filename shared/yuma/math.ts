/**
 * Vector and sparse-matrix helpers of subtensor's epoch (`epoch/math.rs`), over I32F32 bits.
 *
 * A sparse matrix is an array of rows; a row is a list of [column, value] entries in ascending column order.
 * Helpers keep subtensor's entry semantics: which entries survive, which are dropped, where an explicit
 * zero stays explicit. Those details decide Yuma 3's bonds, so they are not "simplified" here.
 */
import {
  type Fixed,
  ONE,
  ZERO,
  add,
  checkedMul,
  min,
  mul,
  safeDiv,
  sub,
  fromInt,
  U16_MAX_FIXED,
  round,
  toU16,
} from './fixed.ts';

export type SparseEntry = readonly [col: number, value: Fixed];
export type SparseRow = SparseEntry[];
export type SparseMatrix = SparseRow[];

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

/** `mask_rows_sparse`: empty the rows where mask is true. */
export function maskRowsSparse(mask: readonly boolean[], m: SparseMatrix): SparseMatrix {
  return m.map((row, i) => (mask[i] ? [] : row));
}

/** `mask_diag_sparse(_except_index)`: drop (i, i) entries, except the owner's own self-weight. */
export function maskDiagSparse(m: SparseMatrix, exceptIndex: number | null): SparseMatrix {
  return m.map((row, i) => row.filter(([j]) => j !== i || (exceptIndex !== null && i === exceptIndex)));
}

/** `vec_mask_sparse_matrix`: drop (i, j) where maskFn(first[i], second[j]). */
export function vecMaskSparse(
  m: SparseMatrix,
  first: readonly number[],
  second: readonly number[],
  maskFn: (a: number, b: number) => boolean,
): SparseMatrix {
  return m.map((row, i) => row.filter(([j]) => !maskFn(first[i] ?? 0, second[j] ?? 0)));
}

/** `scalar_vec_mask_sparse_matrix`: drop (i, j) where maskFn(scalar, vector[j]). */
export function scalarVecMaskSparse(
  m: SparseMatrix,
  scalar: number,
  vector: readonly number[],
  maskFn: (a: number, b: number) => boolean,
): SparseMatrix {
  return m.map((row) => row.filter(([j]) => !maskFn(scalar, vector[j] ?? 0)));
}

/** `inplace_row_normalize_sparse`: rows whose sum is > 0 are divided by it. */
export function rowNormalizeSparse(m: SparseMatrix): SparseMatrix {
  return m.map((row) => {
    let s = ZERO;
    for (const [, v] of row) s = add(s, v);
    if (s <= ZERO) return row;
    return row.map(([j, v]) => [j, safeDiv(v, s)] as const);
  });
}

/** `row_sum_sparse`. */
export function rowSumSparse(m: SparseMatrix): Fixed[] {
  return m.map((row) => {
    let s = ZERO;
    for (const [, v] of row) s = add(s, v);
    return s;
  });
}

/** `inplace_col_normalize_sparse`: divide each entry by its column sum where that sum is non-zero. */
export function colNormalizeSparse(m: SparseMatrix, columns: number): SparseMatrix {
  const colSum: Fixed[] = new Array<Fixed>(columns).fill(ZERO);
  for (const row of m) for (const [j, v] of row) colSum[j] = add(colSum[j]!, v);
  return m.map((row) =>
    row.map(([j, v]) => {
      const d = colSum[j]!;
      return d === ZERO ? ([j, v] as const) : ([j, safeDiv(v, d)] as const);
    }),
  );
}

/** `inplace_col_max_upscale_sparse`: divide each entry by its column maximum where that is non-zero. */
export function colMaxUpscaleSparse(m: SparseMatrix, columns: number): SparseMatrix {
  const colMax: Fixed[] = new Array<Fixed>(columns).fill(ZERO);
  for (const row of m) for (const [j, v] of row) if (colMax[j]! < v) colMax[j] = v;
  return m.map((row) =>
    row.map(([j, v]) => {
      const d = colMax[j]!;
      return d === ZERO ? ([j, v] as const) : ([j, safeDiv(v, d)] as const);
    }),
  );
}

/** `col_clip_sparse`: min(w_ij, c_j); an entry above a zero threshold is dropped. */
export function colClipSparse(m: SparseMatrix, threshold: readonly Fixed[]): SparseMatrix {
  return m.map((row) => {
    const out: SparseRow = [];
    for (const [j, v] of row) {
      const th = threshold[j] ?? ZERO;
      if (th < v) {
        if (th > ZERO) out.push([j, th]);
      } else {
        out.push([j, v]);
      }
    }
    return out;
  });
}

/** `matmul_sparse`: result_j = sum_i vector_i * m_ij. */
export function matmulSparse(m: SparseMatrix, vector: readonly Fixed[], columns: number): Fixed[] {
  const out: Fixed[] = new Array<Fixed>(columns).fill(ZERO);
  m.forEach((row, i) => {
    const scale = vector[i] ?? ZERO;
    for (const [j, v] of row) out[j] = add(out[j]!, mul(scale, v));
  });
  return out;
}

/** `matmul_transpose_sparse`: result_i = sum_j vector_j * m_ij. */
export function matmulTransposeSparse(m: SparseMatrix, vector: readonly Fixed[]): Fixed[] {
  return m.map((row) => {
    let acc = ZERO;
    for (const [j, v] of row) acc = add(acc, mul(vector[j] ?? ZERO, v));
    return acc;
  });
}

/** `row_hadamard_sparse`: m_ij * vector_i. */
export function rowHadamardSparse(m: SparseMatrix, vector: readonly Fixed[]): SparseMatrix {
  return m.map((row, i) => row.map(([j, v]) => [j, mul(v, vector[i] ?? ZERO)] as const));
}

/** `mat_vec_mul_sparse`: m_ij * vector_j, keeping non-zero products. */
export function matVecMulSparse(m: SparseMatrix, vector: readonly Fixed[]): SparseMatrix {
  return m.map((row) => {
    const out: SparseRow = [];
    for (const [j, v] of row) {
      const vj = vector[j];
      if (vj === undefined) continue;
      const p = mul(v, vj);
      if (p !== ZERO) out.push([j, p]);
    }
    return out;
  });
}

/** `vec_mul`: element-wise product with `checked_mul(...).unwrap_or_default()`. */
export function vecMul(a: readonly Fixed[], b: readonly Fixed[]): Fixed[] {
  const n = Math.min(a.length, b.length);
  const out: Fixed[] = [];
  for (let i = 0; i < n; i++) out.push(checkedMul(a[i]!, b[i]!) ?? ZERO);
  return out;
}

/**
 * `interpolate_sparse`: m1 + ratio * (m2 - m1). ratio 0 returns m1 and ratio 1 returns m2 untouched;
 * otherwise rows are densified and only entries > 0 are kept (explicit zeros disappear).
 */
export function interpolateSparse(m1: SparseMatrix, m2: SparseMatrix, columns: number, ratio: Fixed): SparseMatrix {
  if (ratio === ZERO) return m1;
  if (ratio === ONE) return m2;
  return m1.map((row1, i) => {
    const a: Fixed[] = new Array<Fixed>(columns).fill(ZERO);
    const b: Fixed[] = new Array<Fixed>(columns).fill(ZERO);
    for (const [j, v] of row1) a[j] = v;
    for (const [j, v] of m2[i] ?? []) b[j] = v;
    const out: SparseRow = [];
    for (let j = 0; j < columns; j++) {
      const v = add(a[j]!, mul(ratio, sub(b[j]!, a[j]!)));
      if (v > ZERO) out.push([j, v]);
    }
    return out;
  });
}

/** `mat_ema_sparse`: alpha * new + (1 - alpha) * old, densified per row, keeping entries > 0. */
export function matEmaSparse(next: SparseMatrix, old: SparseMatrix, alpha: Fixed): SparseMatrix {
  const n = next.length;
  const oneMinus = sub(ONE, alpha);
  return next.map((row, i) => {
    const acc: Fixed[] = new Array<Fixed>(n).fill(ZERO);
    for (const [j, v] of row) if (j < n) acc[j] = add(acc[j]!, mul(alpha, v));
    for (const [j, v] of old[i] ?? []) if (j < n) acc[j] = add(acc[j]!, mul(oneMinus, v));
    const out: SparseRow = [];
    for (let j = 0; j < n; j++) if (acc[j]! > ZERO) out.push([j, acc[j]!]);
    return out;
  });
}

/**
 * `mat_ema_alpha_sparse`: per-entry alpha. Output entries exist only where `next` has an entry: an old bond
 * on a column the row omits is dropped, not decayed (subtensor's sparse behaviour, SPEC §4.2).
 * `alphaAt(i, j)` supplies the coefficient lazily so only the entries used are computed.
 */
export function matEmaAlphaSparse(
  next: SparseMatrix,
  old: SparseMatrix,
  alphaAt: (i: number, j: number) => Fixed,
): SparseMatrix {
  return next.map((row, i) => {
    const decayed = new Map<number, Fixed>();
    for (const [j, v] of old[i] ?? []) decayed.set(j, mul(sub(ONE, alphaAt(i, j)), v));
    const out: SparseRow = [];
    for (const [j, v] of row) {
      const a = alphaAt(i, j);
      const inc = mul(a, v);
      const val = min(add(decayed.get(j) ?? ZERO, inc > ZERO ? inc : ZERO), ONE);
      if (val > ZERO) out.push([j, val]);
    }
    return out;
  });
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
 * `weighted_median_col_sparse`: per column, the stake-weighted median over rows with positive stake; those
 * stakes are re-normalised first and a missing entry counts as 0.
 */
export function weightedMedianColSparse(
  stake: readonly Fixed[],
  score: SparseMatrix,
  columns: number,
  majority: Fixed,
): Fixed[] {
  const useStake = normalize(stake.filter((s) => s > ZERO));
  const stakeSum = sum(useStake);
  const minority = sub(stakeSum, majority);
  const idx = useStake.map((_, k) => k);
  const useScore: Fixed[][] = Array.from({ length: columns }, () => new Array<Fixed>(useStake.length).fill(ZERO));
  let k = 0;
  for (let r = 0; r < stake.length && r < score.length; r++) {
    if (stake[r]! <= ZERO) continue;
    for (const [c, v] of score[r]!) {
      const col = useScore[c];
      if (col && k < col.length) col[k] = v;
    }
    k++;
  }
  return useScore.map((col) => weightedMedian(useStake, col, idx, minority, ZERO, stakeSum));
}

/**
 * `weighted_median_col` (dense): the same median, but stake is re-normalised per column over the rows with
 * positive stake, and `minority = stake_sum - majority`.
 */
export function weightedMedianCol(
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
