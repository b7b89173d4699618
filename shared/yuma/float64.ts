/**
 * A plain float64 port of the same epoch steps, for comparison only: benchmarks measure what exact fixed point
 * costs against it, and a test checks it lands within the tolerance the SPEC reports for such a port (about 3e-9
 * in ratios, 1 in u16). Consensus never uses it: floats do not agree bit for bit across implementations.
 */
import type { EpochInputs, U16Row, YumaParams } from './types.ts';
import { u16ToRows } from './sparse.ts';

const rowsOf = (m: EpochInputs['weights']): U16Row[] => (Array.isArray(m) ? m : u16ToRows(m));

type Row = [number, number][];

export interface FloatEpochResult {
  consensus: number[];
  incentive: number[];
  dividends: number[];
  validatorTrust: number[];
  emission: number[];
}

const normalize = (v: number[]) => {
  const s = v.reduce((a, b) => a + b, 0);
  return s === 0 ? v.slice() : v.map((x) => x / s);
};

function colNormalize(m: Row[], n: number): Row[] {
  const sums = new Float64Array(n);
  for (const row of m) for (const [j, v] of row) sums[j]! += v;
  return m.map((row) => row.map(([j, v]) => [j, sums[j] ? v / sums[j]! : v]));
}

/** Largest score x whose backers hold at least kappa of the (normalised) stake. */
function median(stake: Float64Array, score: Float64Array, order: Uint32Array, kappa: number): number {
  for (let k = 0; k < order.length; k++) order[k] = k;
  order.sort((a, b) => score[b]! - score[a]!);
  let acc = 0;
  for (const i of order) {
    acc += stake[i]!;
    if (acc >= kappa) return score[i]!;
  }
  return 0;
}

export function runEpochFloat64(params: YumaParams, inputs: EpochInputs): FloatEpochResult {
  const n = inputs.stake.length;
  const inactive = inputs.lastUpdate.map((u) => u + params.activityCutoff < inputs.currentBlock);
  const stake = normalize(
    inputs.stake.map((s, i) => (params.ownerUid !== i && s < params.stakeThreshold ? 0 : Number(s))),
  );
  const permit = inputs.validatorPermit;
  const active = normalize(stake.map((s, i) => (inactive[i] || !permit[i] ? 0 : s)));

  let w: Row[] = rowsOf(inputs.weights).map((row, i) =>
    permit[i]
      ? row
          .filter(([j]) => j !== i && inputs.lastUpdate[i]! > inputs.blockAtRegistration[j]!)
          .map(([j, v]) => [j, v] as [number, number])
      : [],
  );
  w = w.map((row) => {
    const s = row.reduce((a, [, v]) => a + v, 0);
    return s > 0 ? row.map(([j, v]) => [j, v / s] as [number, number]) : row;
  });

  const kappa = params.kappa / 65535;
  const voters = active.flatMap((s, i) => (s > 0 ? [i] : []));
  const voterStake = Float64Array.from(normalize(voters.map((i) => active[i]!)));
  const columns = Array.from({ length: n }, () => new Float64Array(voters.length));
  voters.forEach((i, k) => {
    for (const [j, v] of w[i]!) columns[j]![k] = v;
  });
  const order = new Uint32Array(voters.length);
  const consensus = columns.map((col) => median(voterStake, col, order, kappa));
  const clipped: Row[] = w.map(
    (row) =>
      row.flatMap(([j, v]) => (v > consensus[j]! ? (consensus[j]! > 0 ? [[j, consensus[j]!]] : []) : [[j, v]])) as Row,
  );
  const validatorTrust = clipped.map((row) => row.reduce((a, [, v]) => a + v, 0));
  const ranks = new Array<number>(n).fill(0);
  clipped.forEach((row, i) => row.forEach(([j, v]) => (ranks[j]! += active[i]! * v)));
  const incentive = normalize(ranks);

  const beta = params.bondsPenalty / 65535;
  const wb: Row[] = w.map((row, i) => {
    const c = new Float64Array(n);
    for (const [j, v] of clipped[i]!) c[j] = v;
    return row.map(([j, v]) => [j, v + beta * (c[j]! - v)] as [number, number]).filter(([, v]) => v > 0);
  });
  const alpha = 1 - params.bondsMovingAverage / 1e6;
  let dividends: number[];
  const emaOf = (next: Row[], old: Row[]): Row[] =>
    next.map((row, i) => {
      const acc = new Float64Array(n);
      for (const [j, v] of row) acc[j]! += alpha * v;
      for (const [j, v] of old[i] ?? []) acc[j]! += (1 - alpha) * v;
      const out: Row = [];
      for (let j = 0; j < n; j++) if (acc[j]! > 0) out.push([j, acc[j]!]);
      return out;
    });
  if (params.yuma3) {
    const bonds: Row[] = rowsOf(inputs.bonds).map((row) => row.map(([j, v]) => [j, v / 65535]));
    const ema = emaOf(wb, bonds).map((row) => row.map(([j, v]) => [j, Math.min(1, v)] as [number, number]));
    const shares = colNormalize(ema, n).map((row) => row.reduce((a, [j, v]) => a + v * incentive[j]!, 0));
    dividends = normalize(shares.map((s, i) => s * active[i]!));
  } else {
    const bonds = colNormalize(
      rowsOf(inputs.bonds).map((row) => row.map(([j, v]) => [j, v] as [number, number])),
      n,
    );
    const delta = colNormalize(
      wb.map((row, i) => row.map(([j, v]) => [j, v * active[i]!] as [number, number])),
      n,
    );
    const ema = colNormalize(emaOf(delta, bonds), n);
    dividends = normalize(ema.map((row) => row.reduce((a, [j, v]) => a + v * incentive[j]!, 0)));
  }
  const combined = incentive.map((x, i) => x + dividends[i]!);
  const fallback = active.some((x) => x > 0) ? active : stake;
  const share = combined.some((x) => x > 0) ? normalize(combined) : fallback;
  const rao = Number(params.raoEmission);
  return { consensus, incentive, dividends, validatorTrust, emission: share.map((x) => Math.floor(x * rao)) };
}
