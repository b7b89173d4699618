/**
 * Joining from a checkpoint: how a new node checks the chain of final checkpoints a peer serves before it trusts
 * the state at the end of it. It trusts only the network config. The first epochs have no voters (nobody holds a
 * permit yet), so it replays their records itself; from the first epoch with voters on, each checkpoint must carry
 * the votes of more than 2/3 of the stake its predecessor named as next voters (the stateRoot commits to that set,
 * see rootOf in state.ts). The state it downloads must hash to the bodyHash of the last verified checkpoint.
 * docs/ledger.md, "Joining from a checkpoint".
 */
import { epochBlocks, type NetworkConfig } from './config.ts';
import { checkRecord, type LedgerRecord } from './records.ts';
import {
  linkHash,
  linkRootHolds,
  replay,
  type ChainLink,
  type Replay,
  type ReplayBase,
  type StoredRecord,
} from './replay.ts';
import { checkpointHash } from './state.ts';
import { bodyHashOfText } from './state-text.ts';

/**
 * What a node that joined from a checkpoint keeps instead of the history before it: the base its replays start
 * from, the votes that proved the chain (so it can serve the chain on), and the records of the voterless prefix
 * (so it can serve those too).
 */
export interface JoinedBase extends ReplayBase {
  votes: LedgerRecord[];
  prefix: LedgerRecord[];
  /** The peer it came from, and when (ms). */
  from: string;
  at: number;
}

/** A chain link as a peer serves it: the checkpoint, and the signed votes that name it. */
export interface ServedLink extends ChainLink {
  votes: LedgerRecord[];
}

/** Where a walk starts: a checkpoint this node holds for certain, and who votes on the next epoch. */
export interface TrustedPoint {
  epoch: number;
  hash: string;
  voters: Record<string, bigint>;
}

export interface ChainWalk {
  /** The last epoch whose checkpoint the votes prove (the start's epoch if none). */
  through: number;
  /** Its checkpoint hash. */
  hash: string;
  /** Why the walk stopped before the end of the links, or null if it reached the end. */
  stopped: string | null;
  /** The votes that proved each verified link, by epoch (kept, so this node can serve the chain on). */
  votes: Record<number, LedgerRecord[]>;
}

/** Voters from a link's nextVoters (decimal strings). */
export const votersOfLink = (l: ChainLink): Record<string, bigint> =>
  Object.fromEntries(Object.entries(l.nextVoters).map(([k, v]) => [k, BigInt(v)]));

/**
 * How many leading links have no voters (link 0 never has: nobody holds a permit at genesis). Those epochs cannot
 * be proven by signatures; a joining node replays their records itself.
 */
export function voterlessPrefix(links: readonly ChainLink[]): number {
  let k = 1;
  while (k < links.length && Object.keys(links[k - 1]!.nextVoters).length === 0) k++;
  return Math.min(k, links.length);
}

/**
 * Replay the records of the voterless prefix (epochs 0..length-1) and check they make the links served. Returns
 * the trusted point at the end of the prefix (its voters from this node's own replay), or why it does not hold.
 */
export function replayPrefix(
  config: NetworkConfig,
  links: readonly ChainLink[],
  length: number,
  records: readonly StoredRecord[],
): { point: TrustedPoint; replay: Replay } | { error: string } {
  const tempo = epochBlocks(config);
  const mine = replay(
    config,
    records.filter((r) => r.record.block < length * tempo),
    length * tempo,
  );
  for (let k = 0; k < length; k++) {
    const theirs = links[k];
    const ours = mine.chain[k];
    if (!theirs || !ours || linkHash(config.networkId, ours) !== linkHash(config.networkId, theirs))
      return { error: `the records served for epoch ${k} do not make the checkpoint served for it` };
  }
  const last = mine.chain[length - 1]!;
  return {
    point: { epoch: last.epoch, hash: linkHash(config.networkId, last), voters: votersOfLink(last) },
    replay: mine,
  };
}

/**
 * Follow `links` from `start`: each link must hold its stateRoot together and carry valid votes (signed checkpoint
 * records naming it) from more than 2/3 of the stake of the voters the last proven link named; the link of the
 * next epoch must also name the previous checkpoint. A link may skip epochs (a thinned proof, see thinProof): the
 * votes of the last proven voters then prove it alone, as a light client's skipping verification does. Stops at
 * the first link that fails, saying why; what came before stays proven.
 */
export async function followChain(
  config: NetworkConfig,
  links: readonly ServedLink[],
  start: TrustedPoint,
  nowBlock: number,
): Promise<ChainWalk> {
  const walk: ChainWalk = { through: start.epoch, hash: start.hash, stopped: null, votes: {} };
  const tempo = epochBlocks(config);
  let voters = start.voters;
  const later = links.filter((l) => l.epoch > start.epoch).sort((a, b) => a.epoch - b.epoch);
  for (const [k, link] of later.entries()) {
    const stop = (why: string) => ({ ...walk, stopped: `epoch ${link.epoch}: ${why}` });
    if (k > 0 && link.epoch === later[k - 1]!.epoch) return stop('it is served twice');
    // Nothing from the future: the epoch must have ended by this node's clock (votes too are checked against it).
    if ((link.epoch + 1) * tempo > nowBlock) return stop(`it has not ended by this node's block ${nowBlock}`);
    // The next epoch must name this checkpoint. A later epoch (a skip, see thinProof) cannot: it is proven by the
    // same voters' signatures alone.
    if (link.epoch === walk.through + 1 && link.previous !== walk.hash)
      return stop('it does not name the previous checkpoint');
    if (!linkRootHolds(link)) return stop('its stateRoot is not made of its next voters and body hash');
    const permitted = Object.values(voters).reduce((a, b) => a + b, 0n);
    if (permitted === 0n) return stop('nobody could vote on it, so no signature proves it');
    const hash = linkHash(config.networkId, link);
    const counted = new Map<string, LedgerRecord>();
    for (const raw of link.votes.slice(0, Object.keys(voters).length * 2)) {
      const vote = await checkedVote(config, raw, nowBlock);
      if (!vote || vote.body.epoch !== link.epoch || !(vote.author in voters) || counted.has(vote.author)) continue;
      if (checkpointHash(config.networkId, vote.body) === hash) counted.set(vote.author, vote);
    }
    const agreeing = [...counted.keys()].reduce((a, v) => a + voters[v]!, 0n);
    if (agreeing * 3n <= permitted * 2n)
      return stop(`votes hold ${agreeing} of ${permitted} permitted stake, not more than 2/3`);
    walk.through = link.epoch;
    walk.hash = hash;
    walk.votes[link.epoch] = [...counted.values()];
    voters = votersOfLink(link);
  }
  return walk;
}

/**
 * A vote's record if it is a well-formed, correctly signed checkpoint record of this network, not dated ahead of
 * `nowBlock` (plus the clock skew); else null.
 */
async function checkedVote(
  config: NetworkConfig,
  raw: unknown,
  nowBlock: number,
): Promise<Extract<LedgerRecord, { kind: 'checkpoint' }> | null> {
  try {
    const { record } = await checkRecord(raw, config, { nowBlock, minBlock: 0 });
    return record.kind === 'checkpoint' ? record : null;
  } catch {
    return null;
  }
}

/**
 * The chain as this node serves it: each link with the votes it holds that name it (`votes`: checkpoint records
 * from its store and the ones its base kept).
 */
export function servedLinks(
  config: NetworkConfig,
  chain: readonly ChainLink[],
  votes: readonly LedgerRecord[],
): ServedLink[] {
  // One vote per voter and link: a node holds some votes twice (in its base and in its store, after a join or a
  // rebase), and 64 validators' votes twice over no longer fit one 64 KiB frame.
  const byHash = new Map<string, Map<string, LedgerRecord>>();
  for (const v of votes) {
    if (v.kind !== 'checkpoint') continue;
    const hash = checkpointHash(config.networkId, v.body);
    const voters = byHash.get(hash) ?? new Map<string, LedgerRecord>();
    if (!voters.has(v.author)) voters.set(v.author, v);
    byHash.set(hash, voters);
  }
  return chain.map((l) => ({ ...l, votes: [...(byHash.get(linkHash(config.networkId, l))?.values() ?? [])] }));
}

/** Epochs before a base whose links and votes are kept whole (a node away for fewer walks them one by one). */
export const DENSE_EPOCHS = 16;

/**
 * A shorter proof of the same chain, so that what a node keeps and serves grows with how often the voters change,
 * not with the network's age (docs/ledger.md, "A proof that does not grow with age"). Kept: the voterless prefix
 * (a joiner replays it), every link from epoch `denseFrom` on with all its votes, and between them as few links
 * as the votes allow: from a kept link, the latest link (up to `denseFrom`) whose votes from that link's next
 * voters hold more than 2/3 of their stake, with those votes only. A link whose votes do not reach that is kept
 * whole, so the proof never loses what followChain needs. `links` may already be thinned.
 */
export function thinProof(links: readonly ServedLink[], denseFrom: number): ServedLink[] {
  const sorted = [...links].sort((a, b) => a.epoch - b.epoch);
  const prefix = voterlessPrefix(sorted);
  const kept = sorted.slice(0, prefix);
  let from = kept.at(-1);
  let next = prefix;
  while (from && next < sorted.length) {
    if (sorted[next]!.epoch >= denseFrom) {
      kept.push(...sorted.slice(next));
      break;
    }
    const voters = votersOfLink(from);
    const permitted = Object.values(voters).reduce((a, b) => a + b, 0n);
    const fromVoters = (l: ServedLink) => l.votes.filter((v) => v.author in voters);
    const proven = (l: ServedLink) => fromVoters(l).reduce((a, v) => a + voters[v.author]!, 0n) * 3n > permitted * 2n;
    let hop = -1;
    for (let k = next; k < sorted.length && sorted[k]!.epoch <= denseFrom; k++) if (proven(sorted[k]!)) hop = k;
    const link = hop >= 0 ? { ...sorted[hop]!, votes: fromVoters(sorted[hop]!) } : sorted[next]!;
    kept.push(link);
    from = link;
    next = (hop >= 0 ? hop : next) + 1;
  }
  return kept;
}

/**
 * What a node keeps of a chain whose last link is `baseEpoch` (a join or a rebase), to prove it to others: the
 * links and votes of thinProof, with the dense window of DENSE_EPOCHS ending at the base.
 */
export function keptProof(
  config: NetworkConfig,
  chain: readonly ChainLink[],
  votes: readonly LedgerRecord[],
  baseEpoch: number,
): { chain: ChainLink[]; votes: LedgerRecord[] } {
  const byEpoch = new Map(chain.filter((l) => l.epoch <= baseEpoch).map((l) => [l.epoch, l]));
  const links = servedLinks(
    config,
    [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch),
    votes,
  );
  const thin = thinProof(links, baseEpoch - DENSE_EPOCHS + 1);
  return { chain: thin.map(({ votes: _, ...link }) => link), votes: thin.flatMap((l) => l.votes) };
}

/** Whether `text` is the state a verified link names (its body hash is the link's bodyHash). */
export function stateTextHolds(link: ChainLink, text: string): boolean {
  return bodyHashOfText(text) === link.bodyHash;
}
