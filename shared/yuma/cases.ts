/**
 * The test-vector case format of `../shared/yuma/vectors.json`: parsing with a schema, validation with
 * messages that say what is wrong and where, and running a case to the output shape the CLI prints.
 */
import { isInteger, parse as parseLossless, stringify as stringifyLossless } from 'lossless-json';
import { z } from 'zod';
import { fromFloat, toNumber } from './fixed.ts';
import { weightedMedian, weightedMedianColDense, sum } from './math.ts';
import { runEpoch } from './epoch.ts';
import type { EpochInputs, EpochResult, U16Matrix, U16Row, YumaParams } from './types.ts';
import { u16ToRows } from './sparse.ts';

/** u64::MAX: subtensor's stakes and rao amounts are u64. */
export const U64_MAX = (1n << 64n) - 1n;

/**
 * JSON.parse without losing integers: an integer literal beyond 2^53 becomes the exact bigint it spells instead
 * of the nearest float. Every other number is the JS number JSON.parse would give. (A key given twice with
 * different values is refused rather than the last one silently winning.)
 */
export function parseJsonExact(text: string): unknown {
  return parseLossless(text, null, (digits) => {
    const n = Number(digits);
    return isInteger(digits) && !Number.isSafeInteger(n) ? BigInt(digits) : n;
  });
}

/**
 * An integer field held in a JS number. An integer literal beyond ±2^53 arrives from parseJsonExact as a bigint,
 * which is out of range for every such field: it is refused with the message an out-of-range number gets.
 */
function int(min: number, max: number = Number.MAX_SAFE_INTEGER) {
  const outOfRange = (issue: { input?: unknown }) =>
    typeof issue.input !== 'bigint'
      ? undefined
      : issue.input < 0n
        ? `Too small: expected number to be >=${min}`
        : `Too big: expected number to be <=${max}`;
  return z.number({ error: outOfRange }).int().min(min).max(max);
}

/** A ratio or f32 value held in a JS number; an integer literal beyond 2^53 is read as the float JSON.parse gives. */
const real = z.preprocess((v) => (typeof v === 'bigint' ? Number(v) : v), z.number());

const u16 = int(0, 65535);
const blockNumber = int(0);

/**
 * A stake or rao amount, exact as a bigint: an integer (a bigint, a safe-integer number, or a digit string) in
 * 0..u64::MAX. A number beyond 2^53 is refused: it is a float that may not be the integer that was meant.
 */
const u64 = z
  .union([z.number(), z.bigint(), z.string()], {
    error: (issue) =>
      `expected a u64 amount (an integer, a bigint or a digit string), received ${issue.input === null ? 'null' : typeof issue.input}`,
  })
  .transform((v, ctx): bigint => {
    const refuse = (message: string) => {
      ctx.issues.push({ code: 'custom', message, input: v });
      return z.NEVER;
    };
    let amount: bigint;
    if (typeof v === 'number') {
      if (!Number.isInteger(v)) return refuse(`expected an integer amount, got ${v}`);
      if (!Number.isSafeInteger(v))
        return refuse(
          `${v} is beyond 2^53, where a float is not an exact integer; write its digits (or a digit string)`,
        );
      amount = BigInt(v);
    } else if (typeof v === 'string') {
      if (!/^\d+$/.test(v)) return refuse('expected a non-negative integer string');
      amount = BigInt(v);
    } else {
      amount = v;
    }
    if (amount < 0n) return refuse(`Too small: expected a u64 (at least 0), got ${amount}`);
    if (amount > U64_MAX) return refuse(`Too big: expected a u64 (at most ${U64_MAX}), got ${amount}`);
    return amount;
  });

const paramsSchema = z.object({
  kappa_u16: u16,
  bonds_penalty_u16: u16,
  bonds_moving_average_ppm: int(0, 1_000_000),
  yuma3_enabled: z.boolean(),
  liquid_alpha_enabled: z.boolean(),
  alpha_low_u16: u16,
  alpha_high_u16: u16,
  alpha_sigmoid_steepness: int(-32768, 32767),
  max_allowed_validators: u16,
  stake_threshold: u64,
  activity_cutoff_blocks: blockNumber,
  tempo: blockNumber,
  last_mechanism_step_block: blockNumber,
  owner_uid: u16.nullable(),
  rao_emission: u64,
  commit_reveal_masking: z.boolean(),
});

const epochFields = {
  current_block: blockNumber,
  stake: z.array(u64),
  validator_permit: z.array(z.boolean()),
  last_update: z.array(blockNumber),
  block_at_registration: z.array(blockNumber),
  weights: z.array(z.array(u16)),
  weight_entries: z.array(z.array(int(0))).optional(),
  bonds_prev: z.array(z.array(u16)),
  commit_blocks: z.array(blockNumber.nullable()).optional(),
};
const epochSchema = z.object(epochFields);

const medianScalar = z.object({
  stake: z.array(real),
  score: z.array(real),
  kappa: real.pipe(z.number().min(0).max(1)),
});
const medianColumn = z.object({
  stake: z.array(real),
  weights: z.array(z.array(real)),
  kappa: real.pipe(z.number().min(0).max(1)),
});

export const caseSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('weighted_median'), name: z.string(), subcases: z.array(medianScalar) }),
  z.object({ kind: z.literal('weighted_median_col'), name: z.string(), subcases: z.array(medianColumn) }),
  z.object({ kind: z.literal('epoch'), name: z.string(), params: paramsSchema, n: u16, ...epochFields }),
  z.object({
    kind: z.literal('epoch_sequence'),
    name: z.string(),
    params: paramsSchema,
    n: u16,
    epochs: z.array(epochSchema).min(1),
  }),
]);

export type YumaCase = z.infer<typeof caseSchema>;
type EpochFields = z.infer<typeof epochSchema>;
type ParamFields = z.infer<typeof paramsSchema>;

/** A case that is not in the expected format; the message names the field and what is wrong with it. */
export class CaseFormatError extends Error {
  override name = 'CaseFormatError';
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(top level)';
}

/** Parse and validate one case; throws CaseFormatError with "where: what" on the first problem. */
export function parseCase(data: unknown): YumaCase {
  const result = caseSchema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new CaseFormatError(`${formatPath(issue.path)}: ${issue.message}`);
  }
  const c = result.data;
  if (c.kind === 'epoch') checkEpochShape(c, c.n, '');
  if (c.kind === 'epoch_sequence') c.epochs.forEach((e, k) => checkEpochShape(e, c.n, `epochs[${k}].`));
  if (c.kind === 'weighted_median') {
    c.subcases.forEach((s, k) => {
      if (s.stake.length !== s.score.length)
        throw new CaseFormatError(
          `subcases[${k}]: stake has ${s.stake.length} entries but score has ${s.score.length}`,
        );
    });
  }
  if (c.kind === 'weighted_median_col') {
    c.subcases.forEach((s, k) => {
      if (s.weights.length !== s.stake.length)
        throw new CaseFormatError(`subcases[${k}].weights: ${s.weights.length} rows for ${s.stake.length} stakes`);
      const cols = s.weights[0]?.length ?? 0;
      s.weights.forEach((row, r) => {
        if (row.length !== cols)
          throw new CaseFormatError(`subcases[${k}].weights[${r}]: ${row.length} columns, expected ${cols}`);
      });
    });
  }
  return c;
}

function checkEpochShape(e: EpochFields, n: number, where: string): void {
  const vectors = ['stake', 'validator_permit', 'last_update', 'block_at_registration'] as const;
  for (const key of vectors) {
    if (e[key].length !== n) throw new CaseFormatError(`${where}${key}: has ${e[key].length} entries, n is ${n}`);
  }
  for (const key of ['weights', 'bonds_prev'] as const) {
    if (e[key].length !== n) throw new CaseFormatError(`${where}${key}: has ${e[key].length} rows, n is ${n}`);
    e[key].forEach((row, i) => {
      if (row.length !== n) throw new CaseFormatError(`${where}${key}[${i}]: has ${row.length} columns, n is ${n}`);
    });
  }
  if (e.weight_entries) {
    if (e.weight_entries.length !== n)
      throw new CaseFormatError(`${where}weight_entries: has ${e.weight_entries.length} rows, n is ${n}`);
    e.weight_entries.forEach((row, i) => {
      const seen = new Set<number>();
      row.forEach((j, k) => {
        if (j >= n) throw new CaseFormatError(`${where}weight_entries[${i}][${k}]: uid ${j} is not below n = ${n}`);
        if (seen.has(j)) throw new CaseFormatError(`${where}weight_entries[${i}][${k}]: uid ${j} listed twice`);
        seen.add(j);
      });
    });
  }
  if (e.commit_blocks && e.commit_blocks.length !== n)
    throw new CaseFormatError(`${where}commit_blocks: has ${e.commit_blocks.length} entries, n is ${n}`);
}

export function toParams(p: ParamFields): YumaParams {
  return {
    kappa: p.kappa_u16,
    bondsPenalty: p.bonds_penalty_u16,
    bondsMovingAverage: p.bonds_moving_average_ppm,
    yuma3: p.yuma3_enabled,
    liquidAlpha: p.liquid_alpha_enabled,
    alphaLow: p.alpha_low_u16,
    alphaHigh: p.alpha_high_u16,
    alphaSigmoidSteepness: p.alpha_sigmoid_steepness,
    maxAllowedValidators: p.max_allowed_validators,
    stakeThreshold: p.stake_threshold,
    activityCutoff: p.activity_cutoff_blocks,
    tempo: p.tempo,
    lastMechanismStepBlock: p.last_mechanism_step_block,
    ownerUid: p.owner_uid,
    raoEmission: p.rao_emission,
    commitRevealMasking: p.commit_reveal_masking,
  };
}

/** Dense stored weights to sparse rows: an entry exists where it is listed in weight_entries or non-zero. */
function denseToRows(dense: number[][], entries?: number[][]): U16Row[] {
  return dense.map((row, i) => {
    const listed = new Set(entries?.[i] ?? []);
    const out: U16Row = [];
    row.forEach((v, j) => {
      if (v !== 0 || listed.has(j)) out.push([j, v]);
    });
    return out;
  });
}

export function toInputs(e: EpochFields): EpochInputs {
  return {
    currentBlock: e.current_block,
    stake: e.stake.slice(),
    validatorPermit: e.validator_permit.slice(),
    lastUpdate: e.last_update.slice(),
    blockAtRegistration: e.block_at_registration.slice(),
    weights: denseToRows(e.weights, e.weight_entries),
    bonds: denseToRows(e.bonds_prev),
    ...(e.commit_blocks ? { commitBlocks: e.commit_blocks } : {}),
  };
}

/** One epoch's output in the CLI's shape. */
export interface EpochOutput {
  consensus_u16: number[];
  incentive_u16: number[];
  dividends_u16: number[];
  validator_trust_u16: number[];
  bonds_u16: number[][];
  emission: bigint[];
  server_emission: bigint[];
  validator_emission: bigint[];
  new_validator_permit: boolean[];
  consensus: number[];
  incentive: number[];
  dividends: number[];
  validator_trust: number[];
}

export type CaseOutput = { name: string; epochs: EpochOutput[] } | { name: string; subcases: number[] | number[][] };

function denseBonds(m: U16Matrix, n: number): number[][] {
  return u16ToRows(m).map((row) => {
    const dense = new Array<number>(n).fill(0);
    for (const [j, v] of row) dense[j] = v;
    return dense;
  });
}

export function toEpochOutput(r: EpochResult): EpochOutput {
  return {
    consensus_u16: r.consensusU16,
    incentive_u16: r.incentiveU16,
    dividends_u16: r.dividendsU16,
    validator_trust_u16: r.validatorTrustU16,
    bonds_u16: denseBonds(r.bonds, r.n),
    emission: r.emission,
    server_emission: r.serverEmission,
    validator_emission: r.validatorEmission,
    new_validator_permit: r.newValidatorPermit,
    consensus: r.bits.consensus.map(toNumber),
    incentive: r.bits.incentive.map(toNumber),
    dividends: r.bits.dividends.map(toNumber),
    validator_trust: r.bits.validatorTrust.map(toNumber),
  };
}

/**
 * Run a parsed case. Each epoch of a sequence runs from its own given inputs, unless `replay` is set: then
 * each epoch after the first takes the previous epoch's stored bonds and new permits instead.
 */
export function runCase(c: YumaCase, opts: { replay?: boolean } = {}): CaseOutput {
  switch (c.kind) {
    case 'weighted_median':
      return { name: c.name, subcases: c.subcases.map(runScalarMedian) };
    case 'weighted_median_col':
      return { name: c.name, subcases: c.subcases.map(runColumnMedian) };
    case 'epoch':
      return { name: c.name, epochs: [toEpochOutput(runEpoch(toParams(c.params), toInputs(c)))] };
    case 'epoch_sequence': {
      const params = toParams(c.params);
      const epochs: EpochOutput[] = [];
      let previous: EpochResult | undefined;
      for (const e of c.epochs) {
        const inputs = toInputs(e);
        if (opts.replay && previous) {
          inputs.bonds = previous.bonds;
          inputs.validatorPermit = previous.newValidatorPermit;
        }
        previous = runEpoch(params, inputs);
        epochs.push(toEpochOutput(previous));
      }
      return { name: c.name, epochs };
    }
  }
}

/**
 * The median is always one of the scores (or 0): print the input number it came from, so a score given as
 * 0.7 prints as 0.7 rather than as its fixed-point approximation.
 */
function asGiven(result: bigint, given: number[], fixed: bigint[]): number {
  const k = fixed.indexOf(result);
  return k >= 0 ? given[k]! : toNumber(result);
}

/** subtensor's unit test: f32 inputs, minority = 1 - kappa, partition [0, sum(stake)]. */
function runScalarMedian(s: z.infer<typeof medianScalar>): number {
  const f32 = { f32: true };
  const stake = s.stake.map((x) => fromFloat(x, f32));
  const score = s.score.map((x) => fromFloat(x, f32));
  const minority = fromFloat(1, f32) - fromFloat(s.kappa, f32);
  const result = weightedMedian(
    stake,
    score,
    stake.map((_, i) => i),
    minority,
    0n,
    sum(stake),
  );
  return asGiven(result, s.score, score);
}

/** The dense column median: one value per column. */
function runColumnMedian(s: z.infer<typeof medianColumn>): number[] {
  const f32 = { f32: true };
  const stake = s.stake.map((x) => fromFloat(x, f32));
  const weights = s.weights.map((row) => row.map((x) => fromFloat(x, f32)));
  const medians = weightedMedianColDense(stake, weights, fromFloat(s.kappa, f32));
  return medians.map((m, c) =>
    asGiven(
      m,
      s.weights.map((row) => row[c]!),
      weights.map((row) => row[c]!),
    ),
  );
}

/** JSON with bigints written as plain integer literals (exact at any size); everything else as JSON.stringify. */
export function toJson(value: unknown): string {
  return stringifyLossless(value) ?? 'null';
}
