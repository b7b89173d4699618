/**
 * Sparse matrices of I32F32 bits in compressed sparse row (CSR) form, and the sparse helpers of subtensor's
 * `epoch/math.rs` over them.
 *
 * Why CSR: an epoch at n = 4096 touches millions of entries per stage. Keeping each entry as a [col, value]
 * object made the garbage collector the bottleneck; typed arrays hold them without per-entry objects.
 * Row i's entries are at [ptr[i], ptr[i+1]) in ascending column order. Values are never mutated in place:
 * every operation returns a new matrix (sharing `ptr`/`col` when the structure is unchanged).
 *
 * Semantics are subtensor's, entry for entry: which entries survive, which are dropped, where an explicit zero
 * stays explicit. Where subtensor densifies a row and rescans every column, these merge the row's entries
 * instead; a column absent from every input evaluates to zero there and is dropped either way.
 */
import { type Fixed, ONE, ZERO, add, min, mul, safeDiv, sub } from './fixed.ts';
import type { U16Matrix, U16Row } from './types.ts';

export interface Sparse {
  readonly rows: number;
  readonly ptr: Int32Array;
  readonly col: Int32Array;
  readonly val: BigInt64Array;
}

export type SparseEntry = readonly [col: number, value: Fixed];
export type SparseRow = SparseEntry[];

/** Accumulates rows of a new matrix; capacity is an upper bound on its entries. */
class Builder {
  private readonly ptr: Int32Array;
  private readonly col: Int32Array;
  private readonly val: BigInt64Array;
  private size = 0;
  private row = 0;

  constructor(
    private readonly rows: number,
    capacity: number,
  ) {
    this.ptr = new Int32Array(rows + 1);
    this.col = new Int32Array(capacity);
    this.val = new BigInt64Array(capacity);
  }

  push(j: number, v: Fixed): void {
    this.col[this.size] = j;
    this.val[this.size] = v;
    this.size++;
  }

  endRow(): void {
    this.ptr[++this.row] = this.size;
  }

  finish(): Sparse {
    return { rows: this.rows, ptr: this.ptr, col: this.col.slice(0, this.size), val: this.val.slice(0, this.size) };
  }
}

export function nnz(m: Sparse): number {
  return m.ptr[m.rows]!;
}

/** From rows of [col, value]; each row must be in ascending column order. */
export function fromRows(rows: readonly (readonly SparseEntry[])[]): Sparse {
  const b = new Builder(
    rows.length,
    rows.reduce((s, r) => s + r.length, 0),
  );
  for (const row of rows) {
    for (const [j, v] of row) b.push(j, v);
    b.endRow();
  }
  return b.finish();
}

export function toRows(m: Sparse): SparseRow[] {
  const out: SparseRow[] = [];
  for (let i = 0; i < m.rows; i++) {
    const row: SparseRow = [];
    for (let k = m.ptr[i]!; k < m.ptr[i + 1]!; k++) row.push([m.col[k]!, m.val[k]!]);
    out.push(row);
  }
  return out;
}

/** Stored u16 rows (tuples or CSR) as a fixed-point matrix of n rows, keeping columns below n. */
export function fromU16(m: readonly U16Row[] | U16Matrix, n: number, read: (u: number) => Fixed): Sparse {
  const csr = Array.isArray(m) ? u16FromRows(m) : (m as U16Matrix);
  const b = new Builder(n, csr.ptr[Math.min(n, csr.rows)] ?? 0);
  for (let i = 0; i < n; i++) {
    if (i < csr.rows) {
      for (let k = csr.ptr[i]!; k < csr.ptr[i + 1]!; k++) if (csr.col[k]! < n) b.push(csr.col[k]!, read(csr.val[k]!));
    }
    b.endRow();
  }
  return b.finish();
}

/** A fixed-point matrix to stored u16 form: `convert` each value; rows where `keepRow` is false are emptied. */
export function toU16(m: Sparse, keepRow: (i: number) => boolean, convert: (v: Fixed) => number): U16Matrix {
  const ptr = new Int32Array(m.rows + 1);
  const col = new Int32Array(nnz(m));
  const val = new Uint16Array(nnz(m));
  let size = 0;
  for (let i = 0; i < m.rows; i++) {
    if (keepRow(i)) {
      for (let k = m.ptr[i]!; k < m.ptr[i + 1]!; k++) {
        col[size] = m.col[k]!;
        val[size] = convert(m.val[k]!);
        size++;
      }
    }
    ptr[i + 1] = size;
  }
  return { rows: m.rows, ptr, col: col.slice(0, size), val: val.slice(0, size) };
}

export function u16FromRows(rows: readonly U16Row[]): U16Matrix {
  const total = rows.reduce((s, r) => s + r.length, 0);
  const ptr = new Int32Array(rows.length + 1);
  const col = new Int32Array(total);
  const val = new Uint16Array(total);
  let size = 0;
  rows.forEach((row, i) => {
    for (const [j, v] of row) {
      col[size] = j;
      val[size] = v;
      size++;
    }
    ptr[i + 1] = size;
  });
  return { rows: rows.length, ptr, col, val };
}

export function u16ToRows(m: U16Matrix): U16Row[] {
  const out: U16Row[] = [];
  for (let i = 0; i < m.rows; i++) {
    const row: U16Row = [];
    for (let k = m.ptr[i]!; k < m.ptr[i + 1]!; k++) row.push([m.col[k]!, m.val[k]!]);
    out.push(row);
  }
  return out;
}

/** Same structure, new values. */
function mapValues(m: Sparse, f: (i: number, j: number, v: Fixed) => Fixed): Sparse {
  const val = new BigInt64Array(m.val.length);
  for (let i = 0; i < m.rows; i++) for (let k = m.ptr[i]!; k < m.ptr[i + 1]!; k++) val[k] = f(i, m.col[k]!, m.val[k]!);
  return { rows: m.rows, ptr: m.ptr, col: m.col, val };
}

/** Keep the entries for which `keep` is true. */
function filter(m: Sparse, keep: (i: number, j: number) => boolean): Sparse {
  const b = new Builder(m.rows, nnz(m));
  for (let i = 0; i < m.rows; i++) {
    for (let k = m.ptr[i]!; k < m.ptr[i + 1]!; k++) if (keep(i, m.col[k]!)) b.push(m.col[k]!, m.val[k]!);
    b.endRow();
  }
  return b.finish();
}

/** `mask_rows_sparse`: empty the rows where mask is true. */
export function maskRows(mask: readonly boolean[], m: Sparse): Sparse {
  return filter(m, (i) => !mask[i]);
}

/** `mask_diag_sparse(_except_index)`: drop (i, i) entries, except the owner's own self-weight. */
export function maskDiag(m: Sparse, exceptIndex: number | null): Sparse {
  return filter(m, (i, j) => j !== i || i === exceptIndex);
}

/** `vec_mask_sparse_matrix`: drop (i, j) where maskFn(first[i], second[j]). */
export function vecMask(
  m: Sparse,
  first: readonly number[],
  second: readonly number[],
  maskFn: (a: number, b: number) => boolean,
): Sparse {
  return filter(m, (i, j) => !maskFn(first[i] ?? 0, second[j] ?? 0));
}

/** `scalar_vec_mask_sparse_matrix`: drop (i, j) where maskFn(scalar, vector[j]). */
export function scalarVecMask(
  m: Sparse,
  scalar: number,
  vector: readonly number[],
  maskFn: (a: number, b: number) => boolean,
): Sparse {
  return filter(m, (_i, j) => !maskFn(scalar, vector[j] ?? 0));
}

/** `row_sum_sparse`. */
export function rowSum(m: Sparse): Fixed[] {
  const out: Fixed[] = [];
  for (let i = 0; i < m.rows; i++) {
    let s = ZERO;
    for (let k = m.ptr[i]!; k < m.ptr[i + 1]!; k++) s = add(s, m.val[k]!);
    out.push(s);
  }
  return out;
}

/** `inplace_row_normalize_sparse`: rows whose sum is > 0 are divided by it. */
export function rowNormalize(m: Sparse): Sparse {
  const sums = rowSum(m);
  return mapValues(m, (i, _j, v) => (sums[i]! > ZERO ? safeDiv(v, sums[i]!) : v));
}

function columnFold(m: Sparse, columns: number, fold: (acc: Fixed, v: Fixed) => Fixed): Fixed[] {
  const acc: Fixed[] = new Array<Fixed>(columns).fill(ZERO);
  for (let k = 0; k < nnz(m); k++) {
    const j = m.col[k]!;
    if (j < columns) acc[j] = fold(acc[j]!, m.val[k]!);
  }
  return acc;
}

/** `inplace_col_normalize_sparse`: divide each entry by its column sum where that sum is non-zero. */
export function colNormalize(m: Sparse, columns: number): Sparse {
  const sums = columnFold(m, columns, add);
  return mapValues(m, (_i, j, v) => (sums[j] === undefined || sums[j] === ZERO ? v : safeDiv(v, sums[j]!)));
}

/** `inplace_col_max_upscale_sparse`: divide each entry by its column maximum where that is non-zero. */
export function colMaxUpscale(m: Sparse, columns: number): Sparse {
  const maxes = columnFold(m, columns, (acc, v) => (acc < v ? v : acc));
  return mapValues(m, (_i, j, v) => (maxes[j] === undefined || maxes[j] === ZERO ? v : safeDiv(v, maxes[j]!)));
}

/** `col_clip_sparse`: min(w_ij, c_j); an entry above a zero threshold is dropped. */
export function colClip(m: Sparse, threshold: readonly Fixed[]): Sparse {
  const b = new Builder(m.rows, nnz(m));
  for (let i = 0; i < m.rows; i++) {
    for (let k = m.ptr[i]!; k < m.ptr[i + 1]!; k++) {
      const j = m.col[k]!;
      const v = m.val[k]!;
      const th = threshold[j] ?? ZERO;
      if (th < v) {
        if (th > ZERO) b.push(j, th);
      } else {
        b.push(j, v);
      }
    }
    b.endRow();
  }
  return b.finish();
}

/** `matmul_sparse`: result_j = sum_i vector_i * m_ij. */
export function matmul(m: Sparse, vector: readonly Fixed[], columns: number): Fixed[] {
  const out: Fixed[] = new Array<Fixed>(columns).fill(ZERO);
  for (let i = 0; i < m.rows; i++) {
    const scale = vector[i] ?? ZERO;
    for (let k = m.ptr[i]!; k < m.ptr[i + 1]!; k++) {
      const j = m.col[k]!;
      if (j < columns) out[j] = add(out[j]!, mul(scale, m.val[k]!));
    }
  }
  return out;
}

/** `matmul_transpose_sparse`: result_i = sum_j vector_j * m_ij. */
export function matmulTranspose(m: Sparse, vector: readonly Fixed[]): Fixed[] {
  const out: Fixed[] = [];
  for (let i = 0; i < m.rows; i++) {
    let acc = ZERO;
    for (let k = m.ptr[i]!; k < m.ptr[i + 1]!; k++) acc = add(acc, mul(vector[m.col[k]!] ?? ZERO, m.val[k]!));
    out.push(acc);
  }
  return out;
}

/** `row_hadamard_sparse`: m_ij * vector_i. */
export function rowHadamard(m: Sparse, vector: readonly Fixed[]): Sparse {
  return mapValues(m, (i, _j, v) => mul(v, vector[i] ?? ZERO));
}

/** `mat_vec_mul_sparse`: m_ij * vector_j, keeping non-zero products. */
export function matVecMul(m: Sparse, vector: readonly Fixed[]): Sparse {
  const b = new Builder(m.rows, nnz(m));
  for (let i = 0; i < m.rows; i++) {
    for (let k = m.ptr[i]!; k < m.ptr[i + 1]!; k++) {
      const vj = vector[m.col[k]!];
      if (vj === undefined) continue;
      const p = mul(m.val[k]!, vj);
      if (p !== ZERO) b.push(m.col[k]!, p);
    }
    b.endRow();
  }
  return b.finish();
}

/**
 * Walk the union of row i of `a` and row i of `b` in ascending column order, calling `visit(j, aVal, bVal)`
 * with undefined for a side that has no entry at j. Columns >= `columns` are skipped.
 */
function mergeRow(
  a: Sparse,
  b: Sparse,
  i: number,
  columns: number,
  visit: (j: number, av: Fixed | undefined, bv: Fixed | undefined) => void,
): void {
  let ka = a.ptr[i]!;
  let kb = i < b.rows ? b.ptr[i]! : 0;
  const ea = a.ptr[i + 1]!;
  const eb = i < b.rows ? b.ptr[i + 1]! : 0;
  while (ka < ea || kb < eb) {
    const ja = ka < ea ? a.col[ka]! : Infinity;
    const jb = kb < eb ? b.col[kb]! : Infinity;
    const j = Math.min(ja, jb);
    const av = ja === j ? a.val[ka++]! : undefined;
    const bv = jb === j ? b.val[kb++]! : undefined;
    if (j < columns) visit(j, av, bv);
  }
}

/**
 * `interpolate_sparse`: m1 + ratio * (m2 - m1). ratio 0 returns m1 and ratio 1 returns m2 untouched;
 * otherwise only entries > 0 are kept (explicit zeros disappear).
 */
export function interpolate(m1: Sparse, m2: Sparse, columns: number, ratio: Fixed): Sparse {
  if (ratio === ZERO) return m1;
  if (ratio === ONE) return m2;
  const b = new Builder(m1.rows, nnz(m1) + nnz(m2));
  for (let i = 0; i < m1.rows; i++) {
    mergeRow(m1, m2, i, columns, (j, v1 = ZERO, v2 = ZERO) => {
      const v = add(v1, mul(ratio, sub(v2, v1)));
      if (v > ZERO) b.push(j, v);
    });
    b.endRow();
  }
  return b.finish();
}

/** `mat_ema_sparse`: alpha * new + (1 - alpha) * old over n = rows columns, keeping entries > 0. */
export function matEma(next: Sparse, old: Sparse, alpha: Fixed): Sparse {
  const n = next.rows;
  const oneMinus = sub(ONE, alpha);
  const b = new Builder(n, nnz(next) + nnz(old));
  for (let i = 0; i < n; i++) {
    mergeRow(next, old, i, n, (j, nv, ov) => {
      let acc = ZERO;
      if (nv !== undefined) acc = add(acc, mul(alpha, nv));
      if (ov !== undefined) acc = add(acc, mul(oneMinus, ov));
      if (acc > ZERO) b.push(j, acc);
    });
    b.endRow();
  }
  return b.finish();
}

/**
 * `mat_ema_alpha_sparse`: per-entry alpha. Output entries exist only where `next` has an entry: an old bond on a
 * column the row omits is dropped, not decayed (subtensor's sparse behaviour, SPEC §4.2). The coefficient for
 * (i, j) comes from `alphaOf(j, weight, bond)`, with bond 0 where `old` has no entry.
 */
export function matEmaAlpha(
  next: Sparse,
  old: Sparse,
  alphaOf: (j: number, weight: Fixed, bond: Fixed) => Fixed,
): Sparse {
  const b = new Builder(next.rows, nnz(next));
  for (let i = 0; i < next.rows; i++) {
    mergeRow(next, old, i, Infinity, (j, nv, ov) => {
      if (nv === undefined) return;
      const bond = ov ?? ZERO;
      const a = alphaOf(j, nv, bond);
      const decayed = ov === undefined ? ZERO : mul(sub(ONE, a), bond);
      const inc = mul(a, nv);
      const v = min(add(decayed, inc > ZERO ? inc : ZERO), ONE);
      if (v > ZERO) b.push(j, v);
    });
    b.endRow();
  }
  return b.finish();
}

/**
 * subtensor's `weighted_median` over indices 0..len-1, with preallocated scratch buffers instead of fresh arrays
 * per step. Same pivots, same partitions in the same order, same result as `weightedMedian` in math.ts.
 */
function weightedMedianScratch(
  stake: BigInt64Array,
  score: BigInt64Array,
  len: number,
  minority: Fixed,
  partitionLo: Fixed,
  partitionHi: Fixed,
  buffers: [Int32Array, Int32Array, Int32Array],
): Fixed {
  let [cur, lower, upper] = buffers;
  for (let k = 0; k < len; k++) cur[k] = k;
  let lo = partitionLo;
  let hi = partitionHi;
  const limit = len; // subtensor's safety limit: the initial partition size
  for (let iteration = 0; iteration <= limit; iteration++) {
    if (len === 0) return ZERO;
    if (len === 1) return score[cur[0]!]!;
    const pivot = score[cur[len >> 1]!]!;
    let loStake = ZERO;
    let hiStake = ZERO;
    let lc = 0;
    let uc = 0;
    for (let k = 0; k < len; k++) {
      const idx = cur[k]!;
      const s = score[idx]!;
      if (s === pivot) continue;
      if (s < pivot) {
        loStake = add(loStake, stake[idx]!);
        lower[lc++] = idx;
      } else {
        hiStake = add(hiStake, stake[idx]!);
        upper[uc++] = idx;
      }
    }
    if (minority < add(lo, loStake) && lc > 0) {
      hi = add(lo, loStake);
      [cur, lower] = [lower, cur];
      len = lc;
    } else if (sub(hi, hiStake) <= minority && uc > 0) {
      lo = sub(hi, hiStake);
      [cur, upper] = [upper, cur];
      len = uc;
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
export function weightedMedianCol(stake: readonly Fixed[], m: Sparse, columns: number, majority: Fixed): Fixed[] {
  const positive = stake.filter((s) => s > ZERO);
  let stakeSum = ZERO;
  for (const s of positive) stakeSum = add(stakeSum, s);
  const useStake = BigInt64Array.from(stakeSum === ZERO ? positive : positive.map((s) => safeDiv(s, stakeSum)));
  let sum = ZERO;
  for (const s of useStake) sum = add(sum, s);
  const minority = sub(sum, majority);
  const voters = useStake.length;
  // Column-major scores: column c occupies [c * voters, (c + 1) * voters).
  const scores = new BigInt64Array(columns * voters);
  let k = 0;
  for (let r = 0; r < stake.length && r < m.rows; r++) {
    if (stake[r]! <= ZERO) continue;
    for (let e = m.ptr[r]!; e < m.ptr[r + 1]!; e++) {
      const c = m.col[e]!;
      if (c < columns) scores[c * voters + k] = m.val[e]!;
    }
    k++;
  }
  const buffers: [Int32Array, Int32Array, Int32Array] = [
    new Int32Array(voters),
    new Int32Array(voters),
    new Int32Array(voters),
  ];
  const out: Fixed[] = [];
  for (let c = 0; c < columns; c++) {
    const column = scores.subarray(c * voters, (c + 1) * voters);
    out.push(weightedMedianScratch(useStake, column, voters, minority, ZERO, sum, buffers));
  }
  return out;
}
