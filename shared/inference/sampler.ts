/**
 * The decode step every node runs alike, and that anyone can check without the model.
 *
 * From one row of logits the miner keeps the CANDIDATES most probable tokens with their log-probabilities
 * quantized to integers (units of 1/LOGPROB_UNIT nat), and picks the next token from that list alone: greedy takes
 * the first, sampling draws by Gumbel-max with noise from a counter-mode PRNG keyed by (seed, position, token id).
 * The list is what a miner signs; `selectToken` recomputes the choice from it (stage 1 of an audit,
 * ../../docs/validator.md), and a validator's own forward pass checks the list against the model (stage 2,
 * audit-stats.ts).
 *
 * Determinism: the list is integers, the PRNG is 32-bit integer arithmetic (Math.imul), and the rest is IEEE
 * float64 arithmetic (correctly rounded everywhere) plus Math.exp and Math.log, which V8 implements itself (ports of
 * fdlibm, not the C library), so Node and Chromium give the same bits. Pure: no transformers.js, no I/O.
 */
import { InferenceError } from '../errors.ts';

/** How many candidates a step keeps per position. */
export const CANDIDATES = 16;
/** Log-probabilities are quantized to integers in units of 1/LOGPROB_UNIT nat. */
export const LOGPROB_UNIT = 1024;
/** The lowest quantized log-prob (about -32 nat); anything less probable is clamped to it. */
export const MIN_Q = -32767;

/** A candidate: a token id and its quantized log-prob. */
export type Candidate = [tokenId: number, q: number];

/** One decode step: the token chosen, from `top` (ordered by q descending, then token id ascending). */
export interface Step {
  token: number;
  top: Candidate[];
}

/** Seeded sampling (absent: greedy). topK beyond CANDIDATES means all candidates. */
export interface Sampling {
  seed: number;
  temperature: number;
  topK?: number | undefined;
  topP?: number | undefined;
}

/** A model's own view of a token someone else chose at one position (a validator's teacher-forced pass). */
export interface ScoredPosition {
  /** 1 + how many tokens have a higher float64 log-prob (or an equal one and a lower id). */
  rank: number;
  /** The token's quantized log-prob. */
  q: number;
  /** The model's own candidates at this position, as decodeStep would list them. */
  top: Candidate[];
  /** Whether the token ends a sequence for this model (an honest answer has one only last, and only for "eos"). */
  eos?: boolean;
}

/** One ScoredPosition per generated token. */
export type Reference = ScoredPosition[];

/** Quantize a log-prob (nat) to units of 1/LOGPROB_UNIT, clamped to MIN_Q; never -0. */
export function quantize(logProb: number): number {
  const q = Math.max(MIN_Q, Math.round(logProb * LOGPROB_UNIT));
  return q === 0 ? 0 : q;
}

/**
 * log-softmax in float64: lp_i = (l_i - max) - log(sum_j exp(l_j - max)). Returned as the two numbers that turn a
 * logit into its log-prob, so callers touch the row once more only where they need to.
 */
function logSoftmaxShift(logits: Float32Array): { max: number; logSum: number } {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  if (!Number.isFinite(max) || !Number.isFinite(sum))
    throw new InferenceError('bad-params', 'The model returned logits that are not finite numbers.');
  return { max, logSum: Math.log(sum) };
}

const logProbOf = (logit: number, s: { max: number; logSum: number }) => logit - s.max - s.logSum;

/**
 * The CANDIDATES best tokens by float64 log-prob (ties: lower id), by one pass of insertion into a short sorted
 * list (no sort of the vocabulary), then quantized and ordered by q descending, then id ascending.
 */
function bestCandidates(logits: Float32Array, shift: { max: number; logSum: number }): Candidate[] {
  const n = Math.min(CANDIDATES, logits.length);
  const ids = new Int32Array(n);
  const lps = new Float64Array(n);
  let count = 0;
  for (let i = 0; i < logits.length; i++) {
    const lp = logProbOf(logits[i]!, shift);
    // Strictly better only: ids arrive in ascending order, so on a tie the earlier (lower) id stays.
    if (count === n && !(lp > lps[n - 1]!)) continue;
    let j = count < n ? count++ : n - 1;
    for (; j > 0 && lps[j - 1]! < lp; j--) {
      lps[j] = lps[j - 1]!;
      ids[j] = ids[j - 1]!;
    }
    lps[j] = lp;
    ids[j] = i;
  }
  const top: Candidate[] = [];
  for (let j = 0; j < count; j++) top.push([ids[j]!, quantize(lps[j]!)]);
  // Quantizing can tie neighbours; the signed order is by the integers alone.
  return top.sort(byQThenId);
}

/** The signed order of candidates: q descending, then token id ascending. */
export const byQThenId = (a: Candidate, b: Candidate) => b[1] - a[1] || a[0] - b[0];

/** The quantized top candidates of one row of logits (the whole vocabulary), in signed order. */
export function topCandidates(logits: Float32Array): Candidate[] {
  return bestCandidates(logits, logSoftmaxShift(logits));
}

/** One decode step on one row of logits: the candidates and the token chosen from them at `position`. */
export function decodeStep(logits: Float32Array, position: number, sampling?: Sampling): Step {
  const top = topCandidates(logits);
  return { token: selectToken(top, position, sampling), top };
}

/** How the model ranks `tokenId` in one row of logits, its quantized log-prob, and the model's own candidates. */
export function scorePosition(logits: Float32Array, tokenId: number): ScoredPosition {
  if (!Number.isInteger(tokenId) || tokenId < 0 || tokenId >= logits.length)
    throw new InferenceError('bad-params', `Token id ${tokenId} is outside the model's vocabulary.`);
  const shift = logSoftmaxShift(logits);
  const lp = logProbOf(logits[tokenId]!, shift);
  let rank = 1;
  for (let i = 0; i < logits.length; i++) {
    const other = logProbOf(logits[i]!, shift);
    if (other > lp || (other === lp && i < tokenId)) rank++;
  }
  return { rank, q: quantize(lp), top: bestCandidates(logits, shift) };
}

/** Why `sampling` is unusable, or null. Same bounds as the request schema (protocol.ts). */
export function samplingProblem(sampling: Sampling): string | null {
  const { seed, temperature, topK, topP } = sampling;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) return 'seed must be an integer from 0 to 2^32-1';
  if (!(temperature > 0 && temperature <= 2)) return 'temperature must be above 0 and at most 2';
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 1)) return 'topK must be a positive integer';
  if (topP !== undefined && !(topP > 0 && topP <= 1)) return 'topP must be above 0 and at most 1';
  return null;
}

/**
 * The token chosen from `top` (signed order) at `position` (0 for the first generated token). Greedy: the first
 * candidate. Sampling, exactly:
 *  1. keep the first min(topK ?? CANDIDATES, CANDIDATES) candidates;
 *  2. top-p: w_i = exp((q_i - q_0) / LOGPROB_UNIT / T); keep the shortest prefix whose (w_0 + … + w_k) / sum(w)
 *     is >= topP (at least one candidate);
 *  3. Gumbel-max: the kept candidate with the largest q / LOGPROB_UNIT / T + gumbel(seed, position, id), ties to
 *     the lower id.
 */
export function selectToken(top: readonly Candidate[], position: number, sampling?: Sampling): number {
  if (top.length === 0) throw new InferenceError('bad-params', 'A step needs at least one candidate.');
  if (!sampling) return top[0]![0];
  const problem = samplingProblem(sampling);
  if (problem) throw new InferenceError('bad-params', `Sampling parameters: ${problem}.`);
  const T = sampling.temperature;
  const kept = nucleus(top.slice(0, Math.min(sampling.topK ?? CANDIDATES, CANDIDATES)), T, sampling.topP);
  let best = -Infinity;
  let chosen = -1;
  for (const [id, q] of kept) {
    const score = q / LOGPROB_UNIT / T + gumbel(sampling.seed, position, id);
    if (score > best || (score === best && id < chosen)) {
      best = score;
      chosen = id;
    }
  }
  return chosen;
}

/** The shortest prefix of `top` holding at least `topP` of its probability mass at temperature T. */
function nucleus(top: readonly Candidate[], T: number, topP: number | undefined): readonly Candidate[] {
  if (topP === undefined || topP >= 1) return top;
  const q0 = top[0]![1];
  const weights = top.map(([, q]) => Math.exp((q - q0) / LOGPROB_UNIT / T));
  const total = weights.reduce((s, w) => s + w, 0);
  let mass = 0;
  for (let k = 0; k < top.length; k++) {
    mass += weights[k]!;
    if (mass / total >= topP) return top.slice(0, k + 1);
  }
  return top;
}

/** Standard Gumbel noise for (seed, position, tokenId): -ln(-ln(u)). */
export function gumbel(seed: number, position: number, tokenId: number): number {
  return -Math.log(-Math.log(uniform(seed, position, tokenId)));
}

const TWO_26 = 2 ** 26;
const TWO_53_PLUS_2 = 2 ** 53 + 2;

/**
 * A uniform number strictly between 0 and 1 for (seed, position, tokenId), counter mode: two 32-bit words
 * a = murmur3(seed, [position, tokenId, 0]) and b = murmur3(seed, [position, tokenId, 1]) give the 53-bit integer
 * k = (a >>> 5) * 2^26 + (b >>> 6), and u = (k + 1) / (2^53 + 2): every operand is an exact integer and the
 * division is correctly rounded, so u is the same everywhere, never 0 and never 1.
 */
export function uniform(seed: number, position: number, tokenId: number): number {
  const a = murmur3(seed, [position, tokenId, 0]);
  const b = murmur3(seed, [position, tokenId, 1]);
  return ((a >>> 5) * TWO_26 + (b >>> 6) + 1) / TWO_53_PLUS_2;
}

/** MurmurHash3_x86_32 of the little-endian 32-bit `words`, seeded: the reference algorithm, on words. */
export function murmur3(seed: number, words: readonly number[]): number {
  let h = seed | 0;
  for (const word of words) {
    let k = Math.imul(word | 0, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= words.length * 4;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
