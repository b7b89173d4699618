/**
 * Range-based reconciliation, pure: two random key sets reconcile to their union in a bounded number of rounds,
 * and no request or answer ever outgrows a frame, whatever the sizes and the overlap.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_FRAME_BYTES } from '../p2p/messages.ts';
import { answer, KeyIndex, LIMITS, Reconciliation, type Key } from './reconcile.ts';

/** `n` cheap synthetic keys: ids are 256 random-looking bits from a seeded generator, blocks spread over `blocks`. */
function keys(n: number, seed: string, blocks = 1_000_000): Key[] {
  let x = parseInt(bytesToHex(sha256(new TextEncoder().encode(seed))).slice(0, 8), 16) | 1;
  const word = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0).toString(16).padStart(8, '0');
  };
  const out: Key[] = [];
  for (let k = 0; k < n; k++) {
    const id = word() + word() + word() + word() + word() + word() + word() + word();
    out.push({ block: parseInt(id.slice(0, 8), 16) % blocks, id });
  }
  return out;
}

interface Run {
  rounds: number;
  requestBytes: number;
  answerBytes: number;
  largestFrame: number;
  /** What the asker fetched, and what the answerer learned it lacks. */
  fetched: Set<string>;
  needed: Set<string>;
}

/** Reconcile `a` (asking) with `b` (answering) through JSON, as on the wire; every frame measured. */
function reconcile(a: readonly Key[], b: readonly Key[], from = 0, maxRounds = 10_000): Run {
  const mine = KeyIndex.of(a);
  const theirs = KeyIndex.of(b);
  const rec = new Reconciliation(mine, from);
  const run: Run = {
    rounds: 0,
    requestBytes: 0,
    answerBytes: 0,
    largestFrame: 0,
    fetched: new Set(),
    needed: new Set(),
  };
  while (!rec.done) {
    if (++run.rounds > maxRounds) throw new Error('too many rounds');
    const asked = rec.next();
    const request = JSON.stringify({ ranges: asked });
    const { answer: ans, need } = answer(theirs, JSON.parse(request).ranges);
    const reply = JSON.stringify(ans);
    run.requestBytes += request.length;
    run.answerBytes += reply.length;
    run.largestFrame = Math.max(run.largestFrame, request.length, reply.length);
    rec.take(asked, JSON.parse(reply));
    for (const id of rec.wanted()) run.fetched.add(id);
    for (const id of need) run.needed.add(id);
  }
  return run;
}

const idsOf = (ks: readonly Key[], from = 0) => new Set(ks.filter((k) => k.block >= from).map((k) => k.id));
const minus = (x: Set<string>, y: Set<string>) => new Set([...x].filter((id) => !y.has(id)));

describe('KeyIndex', () => {
  it('gives a range the same fingerprint however the keys came in, and another to a different set', () => {
    const ks = keys(2000, 'fp');
    const one = KeyIndex.of(ks);
    const other = KeyIndex.of([...ks].reverse());
    const tail = KeyIndex.of(ks.filter((k) => k.block < 500_000));
    tail.replaceFrom(
      500_000,
      ks.filter((k) => k.block >= 500_000),
    );
    for (const index of [other, tail]) {
      expect(index.size).toBe(2000);
      for (const [lo, hi] of [
        [0, 2000],
        [5, 1234],
        [31, 33],
        [700, 700],
      ] as const)
        expect(index.fingerprint(lo, hi)).toBe(one.fingerprint(lo, hi));
    }
    expect(KeyIndex.of(ks.slice(1)).fingerprint(0, 1999)).not.toBe(one.fingerprint(0, 2000));
    expect(one.fingerprint(3, 3)).toBe(KeyIndex.of([]).fingerprint(0, 0));
  });

  it('puts a split point after the last key of one part and at or before the first of the next', () => {
    const index = KeyIndex.of(keys(500, 'split', 50));
    const parts = index.split([0, ''], null, 0, 500, 16);
    expect(parts).toHaveLength(16);
    expect(parts.reduce((s, p) => s + p.n, 0)).toBe(500);
    let at = 0;
    for (const p of parts) {
      expect(index.span(p.lo, p.hi)).toEqual([at, at + p.n]);
      at += p.n;
    }
  });
});

describe('reconciliation', () => {
  it('takes one small round trip when both hold the same 200k keys', () => {
    const ks = keys(200_000, 'same');
    const run = reconcile(ks, ks);
    expect(run.rounds).toBe(1);
    expect(run.requestBytes + run.answerBytes).toBeLessThan(300);
  });

  it('finds 1000 keys missing among 200k on either side, every frame under the limit', () => {
    const shared = keys(200_000, 'base');
    const extra = keys(1000, 'extra');
    const forward = reconcile(shared, [...shared, ...extra]);
    const backward = reconcile([...shared, ...extra], shared);
    expect(forward.fetched).toEqual(idsOf(extra));
    expect(forward.needed.size).toBe(0);
    expect(backward.needed).toEqual(idsOf(extra));
    expect(backward.fetched.size).toBe(0);
    for (const run of [forward, backward]) {
      expect(run.largestFrame).toBeLessThanOrEqual(LIMITS.budget);
      expect(run.rounds).toBeLessThan(60);
    }
    console.log(
      `200k vs 200k+1k: asker lacks: ${forward.rounds} round trips, ${forward.requestBytes} B asked, ` +
        `${forward.answerBytes} B answered; answerer lacks: ${backward.rounds} round trips, ` +
        `${backward.requestBytes} B asked, ${backward.answerBytes} B answered`,
    );
  });

  it('gets a fresh node all of 200k keys in frames under the limit', () => {
    const all = keys(200_000, 'fresh');
    const run = reconcile([], all);
    expect(run.fetched.size).toBe(200_000);
    expect(run.largestFrame).toBeLessThanOrEqual(LIMITS.budget);
    console.log(
      `0 vs 200k: ${run.rounds} round trips, ${run.requestBytes} B asked, ${run.answerBytes} B answered ` +
        `(the ids alone are ${200_000 * 67} B)`,
    );
  });

  it('compares only the keys at or after `from`', () => {
    const a = keys(3000, 'from-a', 1000);
    const b = keys(3000, 'from-b', 1000);
    const run = reconcile(a, b, 600);
    expect(run.fetched).toEqual(minus(idsOf(b, 600), idsOf(a, 600)));
    expect(run.needed).toEqual(minus(idsOf(a, 600), idsOf(b, 600)));
  });

  it('reconciles any two sets to their union, in bounded rounds and frames (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 30_000 }),
        fc.integer({ min: 0, max: 3_000 }),
        fc.integer({ min: 0, max: 3_000 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.integer({ min: 0, max: 2 ** 30 }),
        (common, onlyA, onlyB, blocks, seed) => {
          const shared = keys(common, `c${seed}`, blocks);
          const a = [...shared, ...keys(onlyA, `a${seed}`, blocks)];
          const b = [...shared, ...keys(onlyB, `b${seed}`, blocks)];
          const run = reconcile(a, b);
          const [A, B] = [idsOf(a), idsOf(b)];
          expect(run.fetched).toEqual(minus(B, A));
          expect(run.needed).toEqual(minus(A, B));
          expect(run.largestFrame).toBeLessThanOrEqual(MAX_FRAME_BYTES - 2048);
          // Rounds: the depth of the split tree (log16 of the larger set) plus pages of differences.
          const depth = Math.ceil(Math.log(Math.max(a.length, b.length, 2)) / Math.log(LIMITS.split)) + 3;
          expect(run.rounds).toBeLessThanOrEqual(2 * depth + Math.ceil((onlyA + onlyB) / 40));
        },
      ),
      { numRuns: 25 },
    );
  });

  it('refuses an answer about ranges it did not ask about', () => {
    const rec = new Reconciliation(KeyIndex.of(keys(100, 'x')), 10);
    const asked = rec.next();
    expect(() => rec.take(asked, { ranges: [{ lo: [0, ''], hi: null, ids: [] }], handled: 1 })).toThrow(
      /not asked about/,
    );
    expect(() => rec.take(asked, { ranges: [], handled: 0 })).toThrow(/answered 0 of 1/);
  });
});
