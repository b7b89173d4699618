/**
 * How a validator scores (DESIGN §5; what it asks is challenges.ts): a score of correctness x speed x
 * availability per answer, smoothed with an EMA, and u16 weights from the scores.
 * Pure functions, so every part of the validator's judgement can be tested without a network.
 */
export type Outcome = 'correct' | 'wrong' | 'timeout' | 'error';

/**
 * One answer's score in [0, 1]: 0 unless correct (available, and holding up to the validator's checks); a correct
 * answer scores 1 when instant, falling linearly to 0.5 at the deadline.
 */
export function answerScore(outcome: Outcome, latencyMs: number, deadlineMs: number): number {
  if (outcome !== 'correct') return 0;
  const speed = 1 - Math.min(1, Math.max(0, latencyMs / deadlineMs));
  return 0.5 + 0.5 * speed;
}

/** Exponential moving average; the first sample is taken as is. */
export function ema(previous: number | undefined, sample: number, alpha = 0.3): number {
  return previous === undefined ? sample : (1 - alpha) * previous + alpha * sample;
}

/**
 * u16 weights from scores by uid: the best scores 65535, the rest in proportion, uids ascending. Scores of 0
 * become explicit zeros (the validator saw the miner and found it wanting).
 */
export function weightsFromScores(scores: ReadonlyMap<number, number>): { uids: number[]; values: number[] } {
  const uids = [...scores.keys()].sort((a, b) => a - b);
  const max = Math.max(0, ...uids.map((u) => scores.get(u)!));
  const values = uids.map((u) => (max > 0 ? Math.round((scores.get(u)! / max) * 65535) : 0));
  return { uids, values };
}
