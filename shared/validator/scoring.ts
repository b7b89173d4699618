/**
 * What a validator asks and how it scores (DESIGN §5): seeded challenge prompts over a built-in corpus, a score
 * of correctness x speed x availability per answer, smoothed with an EMA, and u16 weights from the scores.
 * Pure functions, so every part of the validator's judgement can be tested without a network.
 */
const SUBJECTS = [
  'A little cat',
  'The old dog',
  'A small bird',
  'The tall tree',
  'A kind girl',
  'The big ship',
  'A brave boy',
  'The quiet river',
  'A red ball',
  'The busy miner',
  'A tired validator',
  'The happy sun',
];
const VERBS = ['found', 'wanted', 'saw', 'made', 'lost', 'shared', 'heard', 'carried', 'painted', 'followed'];
const OBJECTS = [
  'a shiny stone',
  'the park',
  'a new friend',
  'a secret',
  'the moon',
  'a warm cake',
  'the road home',
  'a lost key',
  'a song',
  'the last token',
];

/** A 32-bit mix (splitmix-like) so nearby seeds give unrelated prompts. */
function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b);
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** The challenge prompt for a seed: the same seed gives the same prompt everywhere. */
export function challengePrompt(seed: number): string {
  const a = mix(seed);
  const b = mix(a);
  const c = mix(b);
  return `${SUBJECTS[a % SUBJECTS.length]} ${VERBS[b % VERBS.length]} ${OBJECTS[c % OBJECTS.length]}`;
}

export type Outcome = 'correct' | 'wrong' | 'timeout' | 'error';

/**
 * One answer's score in [0, 1]: 0 unless correct (available and matching the validator's own run); a correct
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
