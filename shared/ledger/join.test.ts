/**
 * Joining from a checkpoint (issue 12, item 4): a replay that starts from the state at a final checkpoint reaches
 * exactly what a replay from genesis reaches, and a joining node's checks of the served chain refuse every forgery
 * we could think of: other keys, too little stake, voters smuggled into a link, votes on other epochs or networks,
 * one voter counted twice, a state that is not the one voted for, withheld records in the voterless prefix.
 */
import { describe, expect, it } from 'vitest';
import { epochBlocks } from './config.ts';
import fc from 'fast-check';
import {
  followChain,
  replayPrefix,
  servedLinks,
  stateTextHolds,
  thinProof,
  voterlessPrefix,
  type ServedLink,
  type TrustedPoint,
} from './join.ts';
import type { LedgerRecord } from './records.ts';
import { linkHash, replay, type ReplayBase, type StoredRecord } from './replay.ts';
import { rootOf, stateRoot, votersHash } from './state.ts';
import { actor, joinableNetwork, make, smallConfig, type Actor } from './testing.ts';

const config = smallConfig();
const T = epochBlocks(config); // 20

const network = () => joinableNetwork(config);

const closeThrough = 8 * T;
/** The joining node's clock: every epoch of the network has ended. */
const NOW_BLOCK = closeThrough + 5;
const votesIn = (records: StoredRecord[]): LedgerRecord[] =>
  records.map((r) => r.record).filter((r) => r.kind === 'checkpoint');

describe('a replay from a base', () => {
  it('reaches the same checkpoints, state and finality as a replay from genesis, from every final epoch', async () => {
    const { records } = await network();
    const full = replay(config, records, closeThrough);
    expect(full.lastVotedFinal).toBeGreaterThanOrEqual(5);
    for (let s = 1; s <= full.lastVotedFinal; s++) {
      // The state right after epoch s closed, as the replay from genesis held it then.
      const base: ReplayBase = { epoch: s, stateText: full.recentStates.get(s)!, chain: full.chain.slice(0, s + 1) };
      expect(stateTextHolds(full.chain[s]!, base.stateText)).toBe(true);
      const after = records.filter((r) => r.record.block >= (s + 1) * T);
      const joined = replay(config, after, closeThrough, base);
      expect(joined.chain.map((l) => linkHash(config.networkId, l))).toEqual(
        full.chain.map((l) => linkHash(config.networkId, l)),
      );
      expect(stateRoot(joined.state)).toBe(stateRoot(full.state));
      expect(joined.lastVotedFinal).toBe(full.lastVotedFinal);
      expect(joined.epochs.map((e) => e.epoch)).toEqual(full.epochs.filter((e) => e.epoch > s).map((e) => e.epoch));
      expect(joined.baseEpoch).toBe(s);
    }
  });

  it('serves the state of its last voted-final epoch, and that text is what the chain names', async () => {
    const { records } = await network();
    const full = replay(config, records, closeThrough);
    const served = full.finalState!;
    expect(served.epoch).toBe(full.lastVotedFinal);
    expect(stateTextHolds(full.chain[served.epoch]!, served.text)).toBe(true);
    expect(stateTextHolds(full.chain[served.epoch]!, served.text.replace('"dust":"', '"dust":"1'))).toBe(false);
  });
});

describe('following the chain', () => {
  async function served() {
    const net = await network();
    const full = replay(config, net.records, closeThrough);
    const links = servedLinks(config, full.chain, votesIn(net.records));
    const prefix = voterlessPrefix(links);
    const start = replayPrefix(config, links, prefix, net.records);
    if ('error' in start) throw new Error(start.error);
    return { ...net, full, links, prefix, start: start.point };
  }

  it('serves each link one vote per voter, however often a node holds the vote (base and store)', async () => {
    const net = await network();
    const full = replay(config, net.records, closeThrough);
    const votes = votesIn(net.records);
    const once = servedLinks(config, full.chain, votes);
    const twice = servedLinks(config, full.chain, [...votes, ...votes]);
    expect(twice).toEqual(once);
    for (const l of once) expect(new Set(l.votes.map((v) => v.author)).size).toBe(l.votes.length);
    expect(once.some((l) => l.votes.length > 0)).toBe(true);
  });

  it('proves every voted-final checkpoint from the records of the voterless epochs and the votes after them', async () => {
    const { full, links, prefix, start } = await served();
    expect(prefix).toBe(1); // epoch 0 has no voters; the validators hold permits from the close of epoch 0 on
    const walk = await followChain(config, links.slice(0, full.lastVotedFinal + 1), start, NOW_BLOCK);
    expect(walk.stopped).toBeNull();
    expect(walk.through).toBe(full.lastVotedFinal);
    expect(walk.hash).toBe(linkHash(config.networkId, full.chain[full.lastVotedFinal]!));
    // The epochs not voted final yet stop the walk, saying why.
    const beyond = await followChain(config, links, start, NOW_BLOCK);
    expect(beyond.through).toBe(full.lastVotedFinal);
    expect(beyond.stopped).toMatch(/not more than 2\/3/);
  });

  it('refuses a chain signed by other keys, even with a state that names them as voters', async () => {
    const { links, start, full } = await served();
    const [m1, m2] = [await actor(), await actor()];
    const target = 2;
    // The attacker rewrites link 2 onward with itself as the next voters, and signs.
    const forged: ServedLink[] = links.slice(0, target).map((l) => ({ ...l }));
    let previous = linkHash(config.networkId, forged[target - 1]!);
    for (let e = target; e <= full.lastVotedFinal; e++) {
      const nextVoters = { [m1.id]: '5000000000000', [m2.id]: '5000000000000' };
      const bodyHash = 'ab'.repeat(32);
      const link = {
        epoch: e,
        recordsRoot: 'cd'.repeat(32),
        stateRoot: rootOf(votersHash(nextVoters), bodyHash),
        previous,
        bodyHash,
        nextVoters,
      };
      const body = { epoch: e, recordsRoot: link.recordsRoot, stateRoot: link.stateRoot, previous };
      const votes = [
        (await make(config, m1, 'checkpoint', (e + 1) * T + 5, body)).record,
        (await make(config, m2, 'checkpoint', (e + 1) * T + 5, body)).record,
      ];
      forged.push({ ...link, votes });
      previous = linkHash(config.networkId, link);
    }
    const walk = await followChain(config, forged, start, NOW_BLOCK);
    expect(walk.through).toBe(target - 1);
    expect(walk.stopped).toMatch(/^epoch 2: votes hold 0 of/);
  });

  it('refuses a link whose next voters were changed (the stateRoot no longer holds)', async () => {
    const { links, start } = await served();
    const intruder = await actor();
    const tampered = links.map((l) =>
      l.epoch === 2 ? { ...l, nextVoters: { ...l.nextVoters, [intruder.id]: '999999999999999' } } : l,
    );
    const walk = await followChain(config, tampered, start, NOW_BLOCK);
    expect(walk.through).toBe(1);
    expect(walk.stopped).toMatch(/stateRoot is not made of/);
  });

  it('counts a voter once, ignores votes on other epochs, other networks and from non-voters', async () => {
    const { links, start, validators, full } = await served();
    const [one, other] = validators; // equal stake
    const link = links[2]!;
    const body = { epoch: 2, recordsRoot: link.recordsRoot, stateRoot: link.stateRoot, previous: link.previous };
    const oneVote = link.votes.find((v) => v.author === one.id)!;
    const outsider = await actor();
    const otherNet = { ...config, networkId: 'webtensor-other' };
    const noise = [
      oneVote,
      oneVote, // the same vote twice
      (await make(config, outsider, 'checkpoint', 3 * T + 5, body)).record, // not a voter
      (await make(otherNet, other, 'checkpoint', 3 * T + 5, body, 99)).record, // another network
      (await make(config, other, 'checkpoint', 3 * T + 5, { ...body, epoch: 3 }, 98)).record, // another epoch
    ];
    // `one` alone holds half the stake: not more than 2/3, so the link is not proven by it.
    const walk = await followChain(config, [...links.slice(0, 2), { ...link, votes: noise }], start, NOW_BLOCK);
    expect(walk.through).toBe(1);
    expect(walk.stopped).toMatch(/not more than 2\/3/);
    expect(full.lastVotedFinal).toBeGreaterThan(2);
  });

  it('refuses a link from the future by its clock, and votes dated ahead of it', async () => {
    const { links, start, full } = await served();
    // A node whose clock is in epoch 3 takes links 1 and 2 (ended), not epoch 3 or later.
    const early = await followChain(config, links, start, 3 * T + 10);
    expect(early.through).toBe(2);
    expect(early.stopped).toMatch(/^epoch 3: it has not ended by this node's block 70/);
    // Votes on epoch 2 are dated block 65: at block 60 epoch 2 has ended, but its votes are ahead of the clock
    // (plus its skew of 3), so they do not count.
    const tooEarly = await followChain(config, links.slice(0, 3), start, 3 * T);
    expect(tooEarly.through).toBe(1);
    expect(tooEarly.stopped).toMatch(/^epoch 2: votes hold 0 of/);
    expect(full.lastVotedFinal).toBeGreaterThan(2);
  });

  it('takes a link that skips epochs only on the votes of the last proven voters, and refuses a wrong previous checkpoint', async () => {
    const { links, start } = await served();
    // The same two validators vote on every epoch: their votes on epoch 3 prove it from epoch 1's voters.
    const skipped = await followChain(config, [links[1]!, links[3]!], start, NOW_BLOCK);
    expect(skipped.stopped).toBeNull();
    expect(skipped.through).toBe(3);
    // Without the votes of epoch 1's voters, a skip proves nothing.
    const unsigned = await followChain(config, [links[1]!, { ...links[3]!, votes: [] }], start, NOW_BLOCK);
    expect(unsigned.stopped).toMatch(/^epoch 3: votes hold 0 of/);
    const rechained = await followChain(
      config,
      [links[1]!, { ...links[2]!, previous: 'ee'.repeat(32) }],
      start,
      NOW_BLOCK,
    );
    expect(rechained.stopped).toMatch(/^epoch 2: it does not name the previous checkpoint/);
  });

  it('refuses a voterless prefix whose records were withheld or changed', async () => {
    const { links, prefix, records } = await served();
    const withheld = replayPrefix(
      config,
      links,
      prefix,
      records.filter((r) => r.record.kind !== 'stake.add'),
    );
    expect(withheld).toEqual({ error: 'the records served for epoch 0 do not make the checkpoint served for it' });
  });
});

/**
 * A valid chain of `voterSets.length` epochs made directly (no replay): link e names `voterSets[e]` (stakes) as
 * the voters of epoch e + 1, and every voter of epoch e signs link e. Enough for followChain and thinProof, which
 * look only at links, voters and signed votes.
 */
async function chainOf(sets: ReadonlyArray<ReadonlyArray<[Actor, bigint]>>) {
  const links: ServedLink[] = [];
  let previous = '00'.repeat(32);
  for (const [e, set] of sets.entries()) {
    const nextVoters = Object.fromEntries(set.map(([a, stake]) => [a.id, String(stake)]));
    const bodyHash = (e % 256).toString(16).padStart(2, '0').repeat(32);
    const link = {
      epoch: e,
      recordsRoot: 'cd'.repeat(32),
      stateRoot: rootOf(votersHash(nextVoters), bodyHash),
      previous,
      bodyHash,
      nextVoters,
    };
    const body = { epoch: e, recordsRoot: link.recordsRoot, stateRoot: link.stateRoot, previous };
    const votes =
      e === 0
        ? []
        : await Promise.all(sets[e - 1]!.map(([a]) => make(config, a, 'checkpoint', (e + 1) * T + 1, body, e)));
    links.push({ ...link, votes: votes.map((v) => v.record) });
    previous = linkHash(config.networkId, link);
  }
  const first = links[0]!;
  const start: TrustedPoint = {
    epoch: 0,
    hash: linkHash(config.networkId, first),
    voters: Object.fromEntries(Object.entries(first.nextVoters).map(([k, v]) => [k, BigInt(v)])),
  };
  return { links, start, now: (sets.length + 1) * T + 5 };
}

describe('a thinned proof (a proof that does not grow with age)', () => {
  let pool: Actor[];
  const pooled = async () => (pool ??= await Promise.all(Array.from({ length: 6 }, () => actor())));

  it('keeps the prefix, one link per change of voters and the dense window, and still proves the last link', async () => {
    const [a, b, c, d] = await pooled();
    // Voters a, b, c for 20 epochs, then d replaces c (a and b hold 2/3 of the old stake: not more), then stable.
    const sets = Array.from({ length: 40 }, (_, e) =>
      e < 20
        ? [
            [a!, 10n],
            [b!, 10n],
            [c!, 10n],
          ]
        : [
            [a!, 10n],
            [b!, 10n],
            [d!, 10n],
          ],
    ) as [Actor, bigint][][];
    const { links, start, now } = await chainOf(sets);
    const thin = thinProof(links, 36);
    // Epoch 0 (prefix); 20, the last link a, b and c sign (it names d as a voter of epoch 21); from there a, b
    // and d sign everything, so nothing else until the window 36-39. Links 1-19 and 21-35 are dropped.
    expect(thin.map((l) => l.epoch)).toEqual([0, 20, 36, 37, 38, 39]);
    const walk = await followChain(config, thin, start, now);
    expect([walk.stopped, walk.through]).toEqual([null, 39]);
    expect(walk.hash).toBe(linkHash(config.networkId, links[39]!));
    // Thinning what was thinned, later, keeps it provable.
    const again = thinProof([...thin.slice(0, -1), ...links.slice(39)], 39);
    expect((await followChain(config, again, start, now)).through).toBe(39);
  });

  it('proves the last link for any schedule of voters and stakes (property)', async () => {
    const actors = await pooled();
    const voterSet = fc
      .uniqueArray(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.bigInt({ min: 1n, max: 3n })), {
        minLength: 1,
        maxLength: 4,
        selector: ([i]) => i,
      })
      .map((set) => set.map(([i, stake]) => [actors[i]!, stake] as [Actor, bigint]));
    await fc.assert(
      fc.asyncProperty(fc.array(voterSet, { minLength: 2, maxLength: 24 }), fc.nat(30), async (sets, window) => {
        const { links, start, now } = await chainOf(sets);
        const last = sets.length - 1;
        const thin = thinProof(links, last - window);
        expect(thin.at(-1)!.epoch).toBe(last);
        expect(thin.length).toBeLessThanOrEqual(links.length);
        const walk = await followChain(config, thin, start, now);
        expect([walk.stopped, walk.through]).toEqual([null, last]);
      }),
      { numRuns: 25 },
    );
  });

  it('refuses a skip signed by voters holding 2/3 or less of the stake it starts from', async () => {
    const [a, b, c, m] = await pooled();
    const sets = Array.from({ length: 10 }, () => [
      [a!, 10n],
      [b!, 10n],
      [c!, 10n],
    ]) as [Actor, bigint][][];
    const { links, start, now } = await chainOf(sets);
    // The attacker holds a and b's keys (exactly 2/3) and signs a forged epoch 9 that names m as every voter.
    const nextVoters = { [m!.id]: '1000' };
    const bodyHash = 'ef'.repeat(32);
    const forged = {
      epoch: 9,
      recordsRoot: 'ab'.repeat(32),
      stateRoot: rootOf(votersHash(nextVoters), bodyHash),
      previous: 'aa'.repeat(32),
      bodyHash,
      nextVoters,
    };
    const body = { epoch: 9, recordsRoot: forged.recordsRoot, stateRoot: forged.stateRoot, previous: forged.previous };
    const votes = [
      (await make(config, a!, 'checkpoint', 10 * T + 1, body, 99)).record,
      (await make(config, b!, 'checkpoint', 10 * T + 1, body, 99)).record,
    ];
    const walk = await followChain(config, [links[0]!, { ...forged, votes }], start, now);
    expect(walk.through).toBe(0);
    expect(walk.stopped).toMatch(/^epoch 9: votes hold 20 of 30 permitted stake/);
  });
});
