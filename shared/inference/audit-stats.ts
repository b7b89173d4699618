/**
 * The two checks of a miner's signed steps (sampler.ts), as pure functions.
 *
 * Stage 1 (`checkSteps`), every answer, no model: each step's candidate list is well formed and a possible
 * distribution, and each token is the one `selectToken` picks from it at that position with the request's
 * sampling. A miner cannot then choose tokens freely; it can only lie about the candidates.
 *
 * Stage 2 (`compareWithReference`), a sample of answers: the validator's own teacher-forced pass over the miner's
 * tokens (`InferenceEngine.score`) says where each token ranks and what the log-probs are; an honest miner on
 * another backend (WebGPU against WASM) differs by float rounding only, a different model or made-up candidates
 * by much more. The per-position statistics are returned so a bench can calibrate the thresholds on honest runs.
 */
import {
  byQThenId,
  CANDIDATES,
  LOGPROB_UNIT,
  MIN_Q,
  samplingProblem,
  selectToken,
  type Candidate,
  type Reference,
  type Sampling,
  type ScoredPosition,
  type Step,
} from './sampler.ts';

export type StageOne = { ok: true } | { ok: false; position: number; reason: string };

/** Rounding each of CANDIDATES log-probs by up to 1/2048 nat moves their total probability by well under this. */
const MASS_SLACK = 1e-3;

/** Why a candidate list is malformed or impossible, or null. */
export function topProblem(top: unknown): string | null {
  if (!Array.isArray(top) || top.length < 1 || top.length > CANDIDATES)
    return `its candidates must be a list of 1 to ${CANDIDATES}`;
  const seen = new Set<number>();
  let mass = 0;
  for (let k = 0; k < top.length; k++) {
    const c: unknown = top[k];
    if (!Array.isArray(c) || c.length !== 2) return `candidate ${k} is not a [token id, log-prob] pair`;
    const [id, q] = c as unknown[];
    if (!Number.isInteger(id) || (id as number) < 0) return `candidate ${k} has no valid token id`;
    if (!Number.isInteger(q) || (q as number) < MIN_Q || (q as number) > 0)
      return `candidate ${k} has a log-prob outside ${MIN_Q}..0`;
    if (seen.has(id as number)) return `token ${id as number} is listed twice`;
    seen.add(id as number);
    if (k > 0 && byQThenId(top[k - 1] as Candidate, c as Candidate) > 0)
      return `candidate ${k} is out of order (log-prob descending, then token id ascending)`;
    mass += Math.exp((q as number) / LOGPROB_UNIT);
  }
  if (mass > 1 + MASS_SLACK) return `its probabilities add up to ${mass.toFixed(4)}, more than 1`;
  // A short list is only honest when it is the whole vocabulary, and then it holds all the mass.
  if (top.length < CANDIDATES && mass < 1 - MASS_SLACK)
    return `it lists fewer than ${CANDIDATES} candidates but only ${mass.toFixed(4)} of the probability`;
  return null;
}

/**
 * Stage 1: one step per token, each with a well-formed candidate list, and each token the one selectToken picks
 * from its list at its position with `sampling` (absent: greedy). The first failure names its position.
 */
export function checkSteps(steps: readonly Step[], tokenIds: readonly number[], sampling?: Sampling): StageOne {
  const problem = sampling && samplingProblem(sampling);
  if (problem) return { ok: false, position: 0, reason: `the sampling parameters are invalid: ${problem}` };
  for (let i = 0; i < Math.max(steps.length, tokenIds.length); i++) {
    const fail = (reason: string): StageOne => ({ ok: false, position: i, reason: `position ${i}: ${reason}` });
    const step = steps[i];
    if (i >= tokenIds.length) return fail(`there are ${steps.length} steps for ${tokenIds.length} tokens`);
    if (!step) return fail(`there is no step for token ${tokenIds[i]}`);
    const bad = topProblem(step.top);
    if (bad) return fail(bad);
    if (step.token !== tokenIds[i]) return fail(`the step says token ${step.token}, the answer ${tokenIds[i]}`);
    const expected = selectToken(step.top, i, sampling);
    if (step.token !== expected) return fail(`token ${step.token} is not the one its candidates select (${expected})`);
  }
  return { ok: true };
}

/** Stage 2's bounds: the calibration knobs. */
export interface AuditThresholds {
  /**
   * The miner's token must rank at most this in the validator's distribution (1 = its most probable), plus how
   * far down its own candidates the miner says it was: a sampled token may honestly be the miner's 10th, and
   * then the validator's 17th at most with 8. For greedy answers (the miner's 1st) it is the plain rank bound.
   */
  maxRank: number;
  /** The largest log-prob difference (nat) the two candidate lists may show at any position. */
  maxDistance: number;
}

/**
 * Initial stage-2 thresholds, TO BE CALIBRATED from honest runs on different backends (WASM against WebGPU or
 * SwiftShader): rank 8 leaves room for near-ties that rounding reorders, 0.5 nat is far above float noise
 * (same-backend runs differ by at most a quantization step) and far below what a different model shows.
 */
export const DEFAULT_AUDIT_THRESHOLDS: AuditThresholds = { maxRank: 8, maxDistance: 0.5 };

export interface PositionStats {
  /** The miner's token's rank in the validator's distribution. */
  rank: number;
  /** The token's place (1-based) in the miner's own candidates. */
  minerRank: number;
  /** positionDistance() in nat. */
  distance: number;
  /** How many of the miner's candidates the validator's list also holds. */
  overlap: number;
}

export interface StageTwo {
  ok: boolean;
  worstRank: number;
  worstDistance: number;
  /** The first position that fails a threshold, or null. */
  failedAt: number | null;
  /** One sentence: why it failed, or that it passed and by how much. */
  reason: string;
  /** One entry per compared position, for calibration. */
  positions: PositionStats[];
}

/**
 * The largest log-prob difference (nat) the miner's step and the validator's view of the same position prove:
 *  - |q_miner − q_validator| for every candidate both lists hold, and for the miner's chosen token (the validator
 *    scored it even outside its own list);
 *  - a candidate one full list lacks is at most that list's last log-prob, so it differs by at least how far it
 *    sits above that last one (this catches made-up candidates that the other list does not hold).
 */
export function positionDistance(step: Step, ref: ScoredPosition): number {
  const mine = new Map(step.top);
  const theirs = new Map(ref.top);
  let worst = Math.abs((mine.get(step.token) ?? MIN_Q) - ref.q);
  worst = Math.max(worst, oneSided(step.top, theirs, ref.top), oneSided(ref.top, mine, step.top));
  return worst / LOGPROB_UNIT;
}

/** Differences of `from`'s candidates against `other`: exact where it holds them, bounded where it is full. */
function oneSided(from: readonly Candidate[], other: Map<number, number>, otherTop: readonly Candidate[]): number {
  const floor = otherTop.length === CANDIDATES ? otherTop.at(-1)![1] : null;
  let worst = 0;
  for (const [id, q] of from) {
    const theirs = other.get(id);
    if (theirs !== undefined) worst = Math.max(worst, Math.abs(q - theirs));
    else if (floor !== null) worst = Math.max(worst, q - floor);
  }
  return worst;
}

/**
 * Stage 2: the miner's steps against the validator's teacher-forced reference for the same tokens (run stage 1
 * first: it makes each step's token the answer's token). Each position must rank the miner's token within
 * maxRank (beyond the miner's own place for it) and keep positionDistance within maxDistance.
 */
export function compareWithReference(
  steps: readonly Step[],
  reference: Reference,
  thresholds: AuditThresholds = DEFAULT_AUDIT_THRESHOLDS,
): StageTwo {
  const positions: PositionStats[] = [];
  let failedAt: number | null = null;
  let reason = '';
  const n = Math.min(steps.length, reference.length);
  for (let i = 0; i < n; i++) {
    const step = steps[i]!;
    const ref = reference[i]!;
    const theirs = new Set(ref.top.map(([id]) => id));
    const stats = {
      rank: ref.rank,
      minerRank: step.top.findIndex(([id]) => id === step.token) + 1,
      distance: positionDistance(step, ref),
      overlap: step.top.filter(([id]) => theirs.has(id)).length,
    };
    positions.push(stats);
    if (failedAt !== null) continue;
    const allowedRank = thresholds.maxRank + Math.max(0, stats.minerRank - 1);
    if (stats.rank > allowedRank) {
      failedAt = i;
      reason = `position ${i}: token ${step.token} ranks ${stats.rank} in the validator's distribution (at most ${allowedRank} allowed for the miner's candidate ${stats.minerRank})`;
    } else if (stats.distance > thresholds.maxDistance) {
      failedAt = i;
      reason = `position ${i}: the log-probs differ by ${stats.distance.toFixed(3)} nat from the validator's (at most ${thresholds.maxDistance} allowed)`;
    }
  }
  if (failedAt === null && steps.length !== reference.length) {
    failedAt = n;
    reason = `position ${n}: ${steps.length} steps against ${reference.length} scored positions`;
  }
  const worstRank = Math.max(0, ...positions.map((p) => p.rank));
  const worstDistance = Math.max(0, ...positions.map((p) => p.distance));
  if (failedAt === null)
    reason = `all ${n} positions agree: worst rank ${worstRank}, worst distance ${worstDistance.toFixed(3)} nat`;
  return { ok: failedAt === null, worstRank, worstDistance, failedAt, reason, positions };
}
