/**
 * Range-based set reconciliation of record ids (after Negentropy, https://logperiodic.com/rbsr.html): what sync
 * uses to find the records two nodes hold differently, in a number of rounds that grows with the log of the
 * history and in bytes that grow with the difference, never with the history.
 *
 * Records are ordered by (block, id). A range [lo, hi) of that order is described by its count and fingerprint.
 * The asking node sends ranges (with its fingerprint, or with its ids when it holds few); the answering node
 * compares each with its own and answers, per range: nothing (same), a split into sub-ranges with its
 * fingerprints (when it holds many), its ids (when it holds few), or the ids the asker lacks (when the asker sent
 * its ids). The asker recurses into the sub-ranges that still differ. Every request and answer is bounded in
 * ranges, ids and bytes (`LIMITS`); ranges that do not fit an answer are left for the next request.
 *
 * Pure: no I/O. `KeyIndex` holds one node's (block, id) keys with prefix sums, so any range's fingerprint costs a
 * binary search and at most 2 × STRIDE additions however long the history.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { MAX_FRAME_BYTES } from '../p2p/messages.ts';

/** A record's place in the order. */
export interface Key {
  block: number;
  id: string;
}

/**
 * A point of the (block, id) order: before every key of an earlier block, and, in its block, before every id
 * that sorts at or after `id` (a hex prefix of 0-64 characters, so a split point needs few).
 */
export type Bound = [block: number, id: string];

interface Span {
  lo: Bound;
  /** null: the end of the order. */
  hi: Bound | null;
}
/** "I hold `n` keys in [lo, hi) with this fingerprint." */
export interface FpRange extends Span {
  fp: string;
  n: number;
}
/** "These are all the ids I hold in [lo, hi)." */
export interface IdsRange extends Span {
  ids: string[];
}
/** "You lack these ids of [lo, hi), which I hold" (the answer to an `IdsRange`: nothing more to compare). */
export interface HaveRange extends Span {
  have: string[];
}
export type AskRange = FpRange | IdsRange;
export type AnswerRange = FpRange | IdsRange | HaveRange;
export interface Answer {
  ranges: AnswerRange[];
  /** How many of the asked ranges (from the first) this answer covers; the asker asks for the rest again. */
  handled: number;
}

export const LIMITS = {
  /** A side holding at most this many keys in a range sends its ids rather than a fingerprint or a split. */
  leaf: 16,
  /** A range is split into at most this many sub-ranges. */
  split: 16,
  /** Ranges per request. */
  maxRanges: 128,
  /** Ids per request, over all its ranges. */
  maxIds: 1024,
  /** Bytes of JSON for a request's ranges or an answer: a frame's limit less room for the signed envelope. */
  budget: MAX_FRAME_BYTES - 2048,
};
export type Limits = typeof LIMITS;

/** Whether key (block, id) sorts before `bound`. */
const before = (block: number, id: string, [b, p]: Bound): boolean => block < b || (block === b && id < p);
/** Whether bound `a` is at or before bound `b` (null: the end). */
export function boundAtOrBefore(a: Bound | null, b: Bound | null): boolean {
  if (b === null) return true;
  if (a === null) return false;
  return a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1]);
}
const jsonBytes = (x: unknown): number => JSON.stringify(x).length; // ids and bounds are ASCII

/*
 * The fingerprint: the sum of the ids (as 256-bit numbers) modulo 2^256, hashed with the count, first 16 bytes.
 * Chosen over sha256 of the sorted ids because a sum has an inverse: prefix sums give any range's fingerprint in
 * O(log n), where a hash of the ids would re-read every id of the range on each request (a month of ids every few
 * seconds, and for every peer that asks). Chosen over XOR because XOR collisions are linear algebra: anyone can
 * pick ~257 records whose ids cancel out; colliding sums need a k-sum search over records the attacker must sign
 * and get stored on both sides, and would only hide records from anti-entropy (gossip still carries them, and
 * finality compares sha256 record roots). Ids are sha256 outputs, so the lanes need no further hashing.
 */
const LANES = 8;
const TWO32 = 2 ** 32;
/** Prefix sums are kept every STRIDE keys: a range's sum adds at most 2 × STRIDE ids to two of them. */
const STRIDE = 32;

function normalize(acc: Float64Array): Float64Array {
  let carry = 0;
  for (let l = LANES - 1; l >= 0; l--) {
    const v = acc[l]! + carry;
    carry = Math.floor(v / TWO32);
    acc[l] = v - carry * TWO32;
  }
  return acc;
}

function subtract(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(LANES);
  let borrow = 0;
  for (let l = LANES - 1; l >= 0; l--) {
    let v = a[l]! - b[l]! - borrow;
    borrow = v < 0 ? 1 : 0;
    if (v < 0) v += TWO32;
    out[l] = v;
  }
  return out;
}

function fingerprintOf(sum: Float64Array, count: number): string {
  const bytes = new Uint8Array(4 * LANES + 8);
  const view = new DataView(bytes.buffer);
  for (let l = 0; l < LANES; l++) view.setUint32(4 * l, sum[l]!);
  view.setUint32(4 * LANES, Math.floor(count / TWO32));
  view.setUint32(4 * LANES + 4, count >>> 0);
  return bytesToHex(sha256(bytes).subarray(0, 16));
}

const hex64 = /^[0-9a-f]{64}$/;

/** Write the 8 big-endian 32-bit lanes of a 64-hex-character id at `lanes[at..]` (no slicing: this runs per key). */
function parseLanes(id: string, lanes: Uint32Array, at: number): void {
  for (let l = 0; l < LANES; l++) {
    let v = 0;
    for (let c = 8 * l; c < 8 * l + 8; c++) {
      const code = id.charCodeAt(c);
      v = v * 16 + (code <= 57 ? code - 48 : code - 87); // '0'-'9', 'a'-'f' (ids are checked before)
    }
    lanes[at + l] = v;
  }
}

/** One node's keys in (block, id) order, with prefix sums for fingerprints. */
export class KeyIndex {
  private blocks: number[] = [];
  private ids: string[] = [];
  private lanes = new Uint32Array(0);
  /** prefix[s * LANES ..] = the sum of keys [0, s * STRIDE), normalized. */
  private prefix = new Float64Array(LANES);
  private readonly held = new Set<string>();

  /** An index of `keys` (any order; ids must be 64 hex characters). */
  static of(keys: Iterable<Key>): KeyIndex {
    const index = new KeyIndex();
    index.replaceFrom(0, [...keys]);
    return index;
  }

  get size(): number {
    return this.ids.length;
  }

  has(id: string): boolean {
    return this.held.has(id);
  }

  /** Replace every key at or after `block` with `keys` (all at or after `block`; any order). */
  replaceFrom(block: number, keys: readonly Key[]): void {
    const cut = this.lowerIndex([block, '']);
    for (let k = cut; k < this.ids.length; k++) this.held.delete(this.ids[k]!);
    const tail = keys
      .filter((k) => k.block >= block && hex64.test(k.id) && !this.held.has(k.id))
      .sort((a, b) => a.block - b.block || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.blocks.length = cut;
    this.ids.length = cut;
    for (const k of tail) {
      if (this.held.has(k.id)) continue; // given twice
      this.held.add(k.id);
      this.blocks.push(k.block);
      this.ids.push(k.id);
    }
    const n = this.ids.length;
    if (this.lanes.length < n * LANES) {
      const grown = new Uint32Array(Math.max(n, (2 * this.lanes.length) / LANES, 1024) * LANES);
      grown.set(this.lanes.subarray(0, cut * LANES));
      this.lanes = grown;
    }
    for (let k = cut; k < n; k++) parseLanes(this.ids[k]!, this.lanes, k * LANES);
    // Prefix sums from the first stride the cut touched.
    const strides = Math.floor(n / STRIDE) + 1;
    const from = Math.floor(cut / STRIDE);
    const prefix = new Float64Array(strides * LANES);
    prefix.set(this.prefix.subarray(0, (from + 1) * LANES));
    for (let s = from + 1; s < strides; s++) {
      const acc = prefix.slice((s - 1) * LANES, s * LANES);
      this.addKeys(acc, (s - 1) * STRIDE, s * STRIDE);
      prefix.set(normalize(acc), s * LANES);
    }
    this.prefix = prefix;
  }

  /** The position of the first key at or after `bound` (null: the end). */
  lowerIndex(bound: Bound | null): number {
    if (bound === null) return this.ids.length;
    let lo = 0;
    let hi = this.ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(this.blocks[mid]!, this.ids[mid]!, bound)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The positions [i, j) of the keys in [lo, hi) (empty if hi is not after lo). */
  span(lo: Bound, hi: Bound | null): [number, number] {
    const i = this.lowerIndex(lo);
    return [i, Math.max(i, this.lowerIndex(hi))];
  }

  /** The fingerprint of keys [i, j). */
  fingerprint(i: number, j: number): string {
    return fingerprintOf(subtract(this.sumTo(j), this.sumTo(i)), j - i);
  }

  idsIn(i: number, j: number): string[] {
    return this.ids.slice(i, j);
  }

  /** The shortest bound after key k-1 and at or before key k (0 < k < size). */
  boundBefore(k: number): Bound {
    const [a, b] = [this.ids[k - 1]!, this.ids[k]!];
    const block = this.blocks[k]!;
    if (this.blocks[k - 1]! < block) return [block, ''];
    let common = 0;
    while (a[common] === b[common]) common++;
    return [block, b.slice(0, common + 1)];
  }

  /** Split keys [i, j) of the range [lo, hi) into at most `parts` ranges with about equal counts. */
  split(lo: Bound, hi: Bound | null, i: number, j: number, parts: number): FpRange[] {
    const n = j - i;
    const out: FpRange[] = [];
    let from = i;
    let start = lo;
    for (let p = 1; p <= parts; p++) {
      const to = p === parts ? j : i + Math.floor((n * p) / parts);
      if (to === from) continue;
      const end = p === parts ? hi : this.boundBefore(to);
      out.push({ lo: start, hi: end, fp: this.fingerprint(from, to), n: to - from });
      from = to;
      if (end) start = end;
    }
    return out;
  }

  private sumTo(k: number): Float64Array {
    const s = Math.floor(k / STRIDE);
    const acc = this.prefix.slice(s * LANES, (s + 1) * LANES);
    this.addKeys(acc, s * STRIDE, k);
    return normalize(acc);
  }

  private addKeys(acc: Float64Array, from: number, to: number): void {
    for (let k = from; k < to; k++) for (let l = 0; l < LANES; l++) acc[l]! += this.lanes[k * LANES + l]!;
  }
}

/** How a node answers a request: what it sends back, and the ids the asker holds that it lacks. */
export interface Answered {
  answer: Answer;
  /** Ids the asker listed that this node does not hold (to fetch from the asker, if it wants them). */
  need: string[];
}

/**
 * Answer `ask` from `index`. Work is bounded by the request's limits: a binary search and a fingerprint per
 * range, at most `split` more per split; the answer stops before `budget` bytes. `needFrom`: ids the asker lists
 * in ranges that end at or before this block are not needed (this node's final epochs).
 */
export function answer(
  index: KeyIndex,
  ask: readonly AskRange[],
  options: { needFrom?: number; limits?: Limits } = {},
): Answered {
  const limits = options.limits ?? LIMITS;
  const needFrom = options.needFrom ?? 0;
  const ranges: AnswerRange[] = [];
  const need: string[] = [];
  let bytes = 64;
  let handled = 0;
  for (const r of ask) {
    const [i, j] = index.span(r.lo, r.hi);
    const n = j - i;
    const out: AnswerRange[] = [];
    const missing: string[] = [];
    if ('fp' in r) {
      const same = n === r.n && index.fingerprint(i, j) === r.fp;
      if (!same && n <= limits.leaf) out.push({ lo: r.lo, hi: r.hi, ids: index.idsIn(i, j) });
      else if (!same) out.push(...index.split(r.lo, r.hi, i, j, Math.min(limits.split, Math.ceil(n / limits.leaf))));
    } else {
      if (!boundAtOrBefore(r.hi, [needFrom, ''])) missing.push(...r.ids.filter((id) => !index.has(id)));
      if (n <= limits.leaf) {
        const theirs = new Set(r.ids);
        const have = index.idsIn(i, j).filter((id) => !theirs.has(id));
        if (have.length > 0) out.push({ lo: r.lo, hi: r.hi, have });
      } else out.push(...index.split(r.lo, r.hi, i, j, Math.min(limits.split, Math.ceil(n / limits.leaf))));
    }
    const size = out.reduce((s, x) => s + jsonBytes(x) + 1, 0);
    // Always at least one range: one range's answer is far below the budget, so every request makes progress.
    if (handled > 0 && bytes + size > limits.budget) break;
    bytes += size;
    ranges.push(...out);
    need.push(...missing);
    handled++;
  }
  return { answer: { ranges, handled }, need };
}

/**
 * The asking side of one reconciliation with one peer, over keys at or after block `from`: `next()` gives the
 * ranges of the next request, `take()` reads the peer's answer, `wanted()` hands over the ids the peer holds and
 * this node lacks as they are found. Done when nothing is left to ask.
 */
export class Reconciliation {
  /** Ranges still to ask about, the next first (depth first: ids to fetch turn up early). */
  private queue: AskRange[] = [];
  private readonly found = new Set<string>();
  private pending: string[] = [];

  constructor(
    private readonly index: KeyIndex,
    from: number,
    private readonly limits: Limits = LIMITS,
  ) {
    this.queue = this.askFor([from, ''], null, false);
  }

  get done(): boolean {
    return this.queue.length === 0;
  }

  /** The ranges of the next request: from the front of the queue, as many as the limits allow (at least one). */
  next(): AskRange[] {
    const out: AskRange[] = [];
    let bytes = 64;
    let ids = 0;
    for (const r of this.queue) {
      const size = jsonBytes(r) + 1;
      const rIds = 'ids' in r ? r.ids.length : 0;
      if (out.length > 0 && (out.length >= this.limits.maxRanges || bytes + size > this.limits.budget)) break;
      if (out.length > 0 && ids + rIds > this.limits.maxIds) break;
      out.push(r);
      bytes += size;
      ids += rIds;
    }
    return out;
  }

  /**
   * Read the peer's answer to `asked` (the last `next()`). Throws if the answer is not one to that request (a
   * range outside the ranges it covers, or no progress): the caller stops and counts it against the peer.
   */
  take(asked: readonly AskRange[], reply: Answer): void {
    const { handled } = reply;
    if (handled < 1 || handled > asked.length) throw new Error(`it answered ${handled} of ${asked.length} ranges`);
    const covered = asked.slice(0, handled);
    const followUps: AskRange[] = [];
    for (const r of reply.ranges) {
      if (!(r.hi === null || !boundAtOrBefore(r.hi, r.lo)) || !covered.some((a) => inside(r, a)))
        throw new Error('it answered a range it was not asked about');
      if ('have' in r) this.want(r.have);
      else if ('ids' in r) {
        this.want(r.ids);
        const [i, j] = this.index.span(r.lo, r.hi);
        const theirs = new Set(r.ids);
        // They lack some of ours: send ours, so they can fetch them (an IdsRange, or a split when we hold many).
        if (this.index.idsIn(i, j).some((id) => !theirs.has(id))) followUps.push(...this.askFor(r.lo, r.hi, true));
      } else {
        const [i, j] = this.index.span(r.lo, r.hi);
        if (j - i !== r.n || this.index.fingerprint(i, j) !== r.fp) followUps.push(...this.askFor(r.lo, r.hi, false));
      }
    }
    this.queue = [...followUps, ...this.queue.slice(handled)];
  }

  /** Ids found that the peer holds and this node lacks, since the last call. */
  wanted(): string[] {
    const out = this.pending;
    this.pending = [];
    return out;
  }

  /** How many ranges are left to ask about (for bounds and tests). */
  get queued(): number {
    return this.queue.length;
  }

  private want(ids: readonly string[]): void {
    for (const id of ids)
      if (!this.index.has(id) && !this.found.has(id)) {
        this.found.add(id);
        this.pending.push(id);
      }
  }

  /** What to ask about [lo, hi): our ids if we hold few, else our fingerprint (or our split, if `split`). */
  private askFor(lo: Bound, hi: Bound | null, split: boolean): AskRange[] {
    const [i, j] = this.index.span(lo, hi);
    const n = j - i;
    if (n <= this.limits.leaf) return [{ lo, hi, ids: this.index.idsIn(i, j) }];
    if (!split) return [{ lo, hi, fp: this.index.fingerprint(i, j), n }];
    return this.index.split(lo, hi, i, j, Math.min(this.limits.split, Math.ceil(n / this.limits.leaf)));
  }
}

/** Whether range `r` lies within range `a`. */
function inside(r: Span, a: Span): boolean {
  return boundAtOrBefore(a.lo, r.lo) && boundAtOrBefore(r.hi, a.hi);
}
