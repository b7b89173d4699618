/**
 * A plain float64 port of the same epoch steps, for comparison only. It uses the same data layout (CSR rows,
 * typed arrays) and the same quickselect median as the exact engine, so a benchmark ratio between the two
 * measures what exact fixed-point arithmetic costs and nothing else. A test checks it lands within the tolerance
 * SPEC §2 reports for such a port. Consensus never uses it: floats do not agree bit for bit across machines.
 * Liquid alpha is not modelled (Yuma 3 here always uses the constant EMA coefficient).
 */
import { u16FromRows } from './sparse.ts';
import type { EpochInputs, U16Matrix, YumaParams } from './types.ts';

interface F64Sparse {
  rows: number;
  ptr: Int32Array;
  col: Int32Array;
  val: Float64Array;
}

export interface FloatEpochResult {
  consensus: Float64Array;
  incentive: Float64Array;
  dividends: Float64Array;
  validatorTrust: Float64Array;
  emission: Float64Array;
}

const csr = (m: EpochInputs['weights']): U16Matrix => (Array.isArray(m) ? u16FromRows(m) : m);

function normalize(v: Float64Array): Float64Array {
  let s = 0;
  for (const x of v) s += x;
  if (s === 0) return v.slice();
  return v.map((x) => x / s);
}

/** Keep entries (i, j) for which keep() holds, with value f(i, j, v). */
function build(
  rows: number,
  source: { ptr: Int32Array; col: Int32Array; val: ArrayLike<number>; rows: number },
  keep: (i: number, j: number, v: number) => boolean,
  f: (i: number, j: number, v: number) => number,
): F64Sparse {
  const ptr = new Int32Array(rows + 1);
  const col = new Int32Array(source.col.length);
  const val = new Float64Array(source.col.length);
  let size = 0;
  for (let i = 0; i < rows; i++) {
    if (i < source.rows)
      for (let k = source.ptr[i]!; k < source.ptr[i + 1]!; k++) {
        const j = source.col[k]!;
        const v = source.val[k]!;
        if (keep(i, j, v)) {
          col[size] = j;
          val[size] = f(i, j, v);
          size++;
        }
      }
    ptr[i + 1] = size;
  }
  return { rows, ptr, col, val };
}

function colNormalize(m: F64Sparse, n: number): F64Sparse {
  const sums = new Float64Array(n);
  for (let k = 0; k < m.ptr[m.rows]!; k++) sums[m.col[k]!]! += m.val[k]!;
  return { ...m, val: m.val.map((v, k) => (sums[m.col[k]!] ? v / sums[m.col[k]!]! : v)) };
}

/** EMA over the union of two rows, keeping positive entries. */
function ema(next: F64Sparse, old: F64Sparse, alpha: number, cap: number): F64Sparse {
  const n = next.rows;
  const ptr = new Int32Array(n + 1);
  const col = new Int32Array(next.col.length + old.col.length);
  const val = new Float64Array(col.length);
  let size = 0;
  for (let i = 0; i < n; i++) {
    let a = next.ptr[i]!;
    let b = i < old.rows ? old.ptr[i]! : 0;
    const ea = next.ptr[i + 1]!;
    const eb = i < old.rows ? old.ptr[i + 1]! : 0;
    while (a < ea || b < eb) {
      const ja = a < ea ? next.col[a]! : Infinity;
      const jb = b < eb ? old.col[b]! : Infinity;
      const j = Math.min(ja, jb);
      let v = 0;
      if (ja === j) v += alpha * next.val[a++]!;
      if (jb === j) v += (1 - alpha) * old.val[b++]!;
      if (v > 0) {
        col[size] = j;
        val[size] = Math.min(v, cap);
        size++;
      }
    }
    ptr[i + 1] = size;
  }
  return { rows: n, ptr, col, val };
}

/** The same deterministic quickselect as subtensor's weighted_median, in floats. */
function weightedMedian(
  stake: Float64Array,
  score: Float64Array,
  len: number,
  minority: number,
  buffers: [Int32Array, Int32Array, Int32Array],
): number {
  let [cur, lower, upper] = buffers;
  for (let k = 0; k < len; k++) cur[k] = k;
  let lo = 0;
  let hi = 1;
  const limit = len;
  for (let it = 0; it <= limit; it++) {
    if (len === 0) return 0;
    if (len === 1) return score[cur[0]!]!;
    const pivot = score[cur[len >> 1]!]!;
    let loStake = 0;
    let hiStake = 0;
    let lc = 0;
    let uc = 0;
    for (let k = 0; k < len; k++) {
      const idx = cur[k]!;
      const s = score[idx]!;
      if (s === pivot) continue;
      if (s < pivot) {
        loStake += stake[idx]!;
        lower[lc++] = idx;
      } else {
        hiStake += stake[idx]!;
        upper[uc++] = idx;
      }
    }
    if (minority < lo + loStake && lc > 0) {
      hi = lo + loStake;
      [cur, lower] = [lower, cur];
      len = lc;
    } else if (hi - hiStake <= minority && uc > 0) {
      lo = hi - hiStake;
      [cur, upper] = [upper, cur];
      len = uc;
    } else {
      return pivot;
    }
  }
  return 0;
}

export function runEpochFloat64(params: YumaParams, inputs: EpochInputs): FloatEpochResult {
  const n = inputs.stake.length;
  const { lastUpdate, blockAtRegistration: registered, validatorPermit: permit } = inputs;
  const stake = normalize(
    Float64Array.from(inputs.stake, (s, i) => (params.ownerUid !== i && s < params.stakeThreshold ? 0 : Number(s))),
  );
  const active = normalize(
    stake.map((s, i) => (lastUpdate[i]! + params.activityCutoff < inputs.currentBlock || !permit[i] ? 0 : s)),
  );

  const raw = build(
    n,
    csr(inputs.weights),
    (i, j) => j < n && permit[i] === true && j !== i && lastUpdate[i]! > registered[j]!,
    (_i, _j, v) => v,
  );
  const rowSums = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let k = raw.ptr[i]!; k < raw.ptr[i + 1]!; k++) rowSums[i]! += raw.val[k]!;
  const w = build(
    n,
    raw,
    () => true,
    (i, _j, v) => (rowSums[i]! > 0 ? v / rowSums[i]! : v),
  );

  // Consensus: stake-weighted median per column over validators with active stake.
  const voters: number[] = [];
  active.forEach((s, i) => s > 0 && voters.push(i));
  const voterStake = normalize(Float64Array.from(voters, (i) => active[i]!));
  const v = voters.length;
  const scores = new Float64Array(n * v);
  voters.forEach((i, k) => {
    for (let e = w.ptr[i]!; e < w.ptr[i + 1]!; e++) scores[w.col[e]! * v + k] = w.val[e]!;
  });
  const buffers: [Int32Array, Int32Array, Int32Array] = [new Int32Array(v), new Int32Array(v), new Int32Array(v)];
  const minority = 1 - params.kappa / 65535;
  const consensus = new Float64Array(n);
  for (let j = 0; j < n; j++)
    consensus[j] = weightedMedian(voterStake, scores.subarray(j * v, (j + 1) * v), v, minority, buffers);

  const clipped = build(
    n,
    w,
    (_i, j, x) => !(x > consensus[j]! && consensus[j]! <= 0),
    (_i, j, x) => Math.min(x, consensus[j]!),
  );
  const validatorTrust = new Float64Array(n);
  const ranks = new Float64Array(n);
  for (let i = 0; i < n; i++)
    for (let k = clipped.ptr[i]!; k < clipped.ptr[i + 1]!; k++) {
      validatorTrust[i]! += clipped.val[k]!;
      ranks[clipped.col[k]!]! += active[i]! * clipped.val[k]!;
    }
  const incentive = normalize(ranks);

  // Bonds penalty: W + beta (Wc - W). With beta = 1 this is Wc, with 0 it is W.
  const beta = params.bondsPenalty / 65535;
  const wb = beta === 1 ? clipped : beta === 0 ? w : ema(clipped, w, beta, Infinity);
  const alpha = 1 - params.bondsMovingAverage / 1e6;
  const prev = csr(inputs.bonds);
  let dividends: Float64Array;
  if (params.yuma3) {
    const bonds = build(
      n,
      prev,
      (_i, j) => j < n,
      (_i, _j, x) => x / 65535,
    );
    const next = colNormalize(ema(wb, bonds, alpha, 1), n);
    const shares = new Float64Array(n);
    for (let i = 0; i < n; i++)
      for (let k = next.ptr[i]!; k < next.ptr[i + 1]!; k++) shares[i]! += next.val[k]! * incentive[next.col[k]!]!;
    dividends = normalize(shares.map((s, i) => s * active[i]!));
  } else {
    const bonds = colNormalize(
      build(
        n,
        prev,
        (_i, j) => j < n,
        (_i, _j, x) => x,
      ),
      n,
    );
    const delta = colNormalize(
      build(
        n,
        wb,
        () => true,
        (i, _j, x) => x * active[i]!,
      ),
      n,
    );
    const next = colNormalize(ema(delta, bonds, alpha, Infinity), n);
    const d = new Float64Array(n);
    for (let i = 0; i < n; i++)
      for (let k = next.ptr[i]!; k < next.ptr[i + 1]!; k++) d[i]! += next.val[k]! * incentive[next.col[k]!]!;
    dividends = normalize(d);
  }
  const combined = incentive.map((x, i) => x + dividends[i]!);
  const share = combined.some((x) => x > 0) ? normalize(combined) : active.some((x) => x > 0) ? active : stake;
  const rao = Number(params.raoEmission);
  return { consensus, incentive, dividends, validatorTrust, emission: share.map((x) => Math.floor(x * rao)) };
}
