/**
 * The state's text and body hash: the text reads back to the same state, a digest that remembers entries gives
 * exactly the hash a fresh one (and a joining node reading the text) computes, and a change of k entries rehashes
 * k entries. Text out of shape is refused with the line named.
 */
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { epochBlocks } from './config.ts';
import { replay, type Replay } from './replay.ts';
import { bodyHashOfText, canonicalJson, StateDigest, stateFromText, stateText } from './state-text.ts';
import type { LedgerState } from './state.ts';
import { joinableNetwork, smallConfig } from './testing.ts';

const config = smallConfig();
let result: Replay;

beforeAll(async () => {
  const { records } = await joinableNetwork(config, 7);
  result = replay(config, records, 8 * epochBlocks(config));
});

const fresh = (s: LedgerState) => new StateDigest().digest(s).bodyHash;
// Peer-id-shaped keys (base58), as every account, hotkey and author is.
const keyArb = fc.stringMatching(/^12D3KooW[1-9A-HJ-NP-Za-km-z]{4}$/);

describe('state text', () => {
  it('writes canonical JSON as RFC 8785 does, bigints as decimal strings', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(canonicalJson(v)).toBe(canonicalize(v));
      }),
    );
    expect(canonicalJson({ b: 2n ** 70n, a: [1, { d: undefined, c: null }] })).toBe(
      '{"a":[1,{"c":null}],"b":"1180591620717411303424"}',
    );
  });

  it('reads every closed state back to its own text, whose body hash is the one its checkpoint names', () => {
    expect(result.recentStates.size).toBeGreaterThan(3);
    for (const [epoch, text] of result.recentStates) {
      const state = stateFromText(text);
      expect(stateText(state)).toBe(text);
      expect(bodyHashOfText(text)).toBe(result.chain[epoch]!.bodyHash);
      expect(fresh(state)).toBe(result.chain[epoch]!.bodyHash);
    }
  });

  it('rehashes only the entries that changed, and gives the hash a fresh digest gives', () => {
    const state = structuredClone(result.state);
    const digest = new StateDigest();
    digest.digest(state);
    expect(digest.rehashed.entries).toBe(stateText(state).split('\n').length);

    const [someone] = Object.keys(state.balances);
    state.balances[someone!]! += 1n;
    const after = digest.digest(state);
    expect(digest.rehashed).toEqual({ entries: 1, buckets: 1 });
    expect(after.bodyHash).toBe(fresh(state));
    expect(after.bodyHash).toBe(bodyHashOfText(after.text));

    digest.digest(state);
    expect(digest.rehashed).toEqual({ entries: 0, buckets: 0 });
  });

  it('keeps a remembering digest equal to a fresh one whatever changes, adds or removes entries', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('balance' as const), key: keyArb, amount: fc.bigInt({ min: 0n, max: 2n ** 64n }) }),
      fc.record({ kind: fc.constant('forget' as const), key: keyArb }),
      fc.record({
        kind: fc.constant('stake' as const),
        key: keyArb,
        on: keyArb,
        amount: fc.bigInt({ min: 1n, max: 99n }),
      }),
      fc.record({ kind: fc.constant('chain' as const), key: keyArb, seq: fc.nat(1000) }),
      fc.record({ kind: fc.constant('emission' as const), uid: fc.nat(7), amount: fc.bigInt({ min: 0n, max: 999n }) }),
    );
    fc.assert(
      fc.property(fc.array(fc.array(op, { maxLength: 6 }), { minLength: 1, maxLength: 8 }), (closes) => {
        const state = structuredClone(result.state);
        const digest = new StateDigest();
        digest.digest(state);
        for (const ops of closes) {
          for (const o of ops) {
            if (o.kind === 'balance') state.balances[o.key] = o.amount;
            else if (o.kind === 'forget') delete state.balances[o.key];
            else if (o.kind === 'stake') (state.stakes[o.on] ??= {})[o.key] = o.amount;
            else if (o.kind === 'chain') state.chains[o.key] = { seq: o.seq, block: o.seq };
            else state.subnets[0]!.lastEmission[o.uid] = o.amount;
          }
          const { text, bodyHash } = digest.digest(state);
          expect(bodyHash).toBe(fresh(state));
          expect(bodyHashOfText(text)).toBe(bodyHash);
          expect(digest.rehashed.entries).toBeLessThanOrEqual(ops.length);
        }
      }),
      { numRuns: 50 },
    );
  });

  it('refuses text out of shape, naming the line', () => {
    const text = stateText(result.state);
    const lines = text.split('\n');
    const swapped = [lines[1], lines[0], ...lines.slice(2)].join('\n');
    expect(() => stateFromText(swapped)).toThrow(/state line 2: expected a path after the one before/);
    expect(() => stateFromText(`${lines[0]}\n${lines[0]}`)).toThrow(/state line 2/);
    expect(() => stateFromText(`${text}\nzzz/unknown\t1`)).toThrow(/unknown path zzz\/unknown/);
    expect(() => stateFromText(`aaa\t{`)).toThrow(/state line 1/);
    expect(() => stateFromText(`balances/__proto__\t"1"`)).toThrow(/unknown path/);
    expect(() => stateFromText(lines.filter((l) => !l.startsWith('ledger')).join('\n'))).toThrow(/has no lastFinal/);
    expect(() => stateFromText(lines.filter((l) => !/^subnets\/\d+\/bonds/.test(l)).join('\n'))).toThrow(
      /has no bonds/,
    );
    expect(() => stateFromText(text.replace(/"issued":"\d+"/, '"issued":-1'))).toThrow(/decimal string/);
    // Old-style JSON text (the format before per-entry hashes) is not a state.
    expect(() => stateFromText('{"balances":{}}')).toThrow(/state line 1/);
  });

  it('never writes a key that could break a path', () => {
    const state = structuredClone(result.state);
    state.balances['a/b\tc'] = 1n;
    expect(() => stateText(state)).toThrow(/may not be written into a path/);
  });
});
