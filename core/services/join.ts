/**
 * Join: a new node, or one that was away for several final epochs, starts from the state at a peer's last final
 * checkpoint instead of downloading and replaying all history. It checks everything before trusting it (see
 * shared/ledger/join.ts): it replays the voterless epochs at the start itself, follows the chain of checkpoints by
 * their votes, and takes the state only if it hashes to what the last verified checkpoint names. Anything wrong,
 * and it syncs the whole history instead. docs/ledger.md, "Joining from a checkpoint".
 */
import { z } from 'zod';
import { blockAt, epochBlocks } from '../../shared/ledger/config.ts';
import {
  followChain,
  keptProof,
  replayPrefix,
  stateTextHolds,
  voterlessPrefix,
  votersOfLink,
  type ChainWalk,
  type JoinedBase,
  type ServedLink,
  type TrustedPoint,
} from '../../shared/ledger/join.ts';
import { checkRecord, type LedgerRecord } from '../../shared/ledger/records.ts';
import { linkHash, type StoredRecord } from '../../shared/ledger/replay.ts';
import { stateFromText, stateText } from '../../shared/ledger/state-text.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import type { LedgerStore } from '../platform.ts';
import { Store, waitFor, type ReadableStore } from '../store.ts';
import type { RecordBook } from './record-book.ts';
import type { PeerTable } from './peers.ts';
import type { RpcRouter } from './rpc.ts';

export interface JoinState {
  /** The last join: from which epoch and peer, what it cost; or why it failed; null before any attempt. */
  last:
    | { epoch: number; from: string; links: number; prefixRecords: number; stateChars: number; ms: number }
    | { from: string; error: string }
    | null;
}

export interface JoinComponents {
  rpc: Pick<RpcRouter, 'call'>;
  store: Pick<LedgerStore, 'setBase' | 'base' | 'all'>;
  /** Direct peers: a new node asks a second one to confirm the chain. */
  peers: Pick<PeerTable, 'direct' | 'peers'>;
  book: Pick<RecordBook, 'network' | 'reloadHead'>;
  snapshot: ReadableStore<LedgerSnapshot | null>;
  replayNow(): Promise<unknown>;
  clock: { now(): number };
}

export interface JoinInit {
  /**
   * A node with voted-final history joins only when a peer's final state is at least this many epochs past its
   * own last voted-final one (default 3); a node with none joins any final state from epoch 1 on.
   */
  minLead?: number;
  /** The most characters of chain (links, votes, prefix) taken from one peer. */
  maxChainChars?: number;
  /** Never join (an archive keeps all of history from genesis). */
  never?: boolean;
  /** How long a new node waits for a second direct peer to confirm a chain (default 20 s). */
  witnessWaitMs?: number;
}

// What a joining node takes from one peer at most: bounds, so a peer cannot make it hold unbounded data (each
// frame is at most 64 KiB; these bound how many it keeps).
const MAX_LINKS = 100_000;
const MAX_PREFIX_RECORDS = 20_000;
const MAX_CHAIN_CHARS = 32 * 1024 * 1024;
const MAX_STATE_CHARS = 64 * 1024 * 1024;
/** Epochs without voters at the start of a chain a new node replays itself, at most. */
const MAX_PREFIX_EPOCHS = 64;
/** Other peers a new node asks to confirm a chain. */
const MAX_WITNESSES = 2;

/** One peer's offer: its final state's epoch and the chain up to it (one link per epoch if honest). */
interface Offer {
  peer: string;
  stateEpoch: number;
  chain: ServedLink[];
  prefix: unknown[];
  /** The budget it exceeded, or null. */
  tooLarge: number | null;
}

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const linkSchema = z.object({
  epoch: z.number().int().nonnegative(),
  recordsRoot: hex64,
  stateRoot: hex64,
  previous: hex64,
  bodyHash: hex64,
  nextVoters: z.record(z.string().max(100), z.string().regex(/^\d{1,30}$/)),
  votes: z.array(z.unknown()).max(1024),
});
const joinChunk = z.union([z.object({ link: linkSchema }), z.object({ prefix: z.array(z.unknown()).max(40) })]);
const joinReply = z.object({ stateEpoch: z.number().int().min(-1) });

/** Times a join asks the same peer again when its final state moved on while the chain was being checked. */
const JOIN_ATTEMPTS = 3;

/** The peer finalised a newer state between offering its chain and serving the state (not its fault). */
class StateMovedOn extends Error {}

export class Join {
  readonly state = new Store<JoinState>({ last: null });
  private readonly tried = new Set<string>();
  private joining: Promise<boolean> | null = null;

  constructor(
    private readonly components: JoinComponents,
    private readonly init: JoinInit = {},
  ) {}

  /**
   * Join from `peer` if it is far enough ahead (once per peer). Resolves true if this node now starts from the
   * peer's checkpoint; false if it did not need to, or could not (the reason is in `state`).
   */
  async maybeJoin(peer: string): Promise<boolean> {
    if (this.init.never) return false;
    // One join at a time; syncs with other peers wait for it (a node that just joined syncs only what follows).
    if (this.joining) return this.joining;
    if (this.tried.has(peer)) return false;
    // Until the first replay this node does not know how far it is behind (it may hold all of history): wait
    // for it (a new tab's first sync comes within a second of starting), rather than sync everything at once.
    if (!this.components.snapshot.get())
      await waitFor(this.components.snapshot, (s) => s !== null, AbortSignal.timeout(10_000)).catch(() => null);
    if (this.joining) return this.joining;
    if (this.tried.has(peer) || !this.components.snapshot.get()) return false;
    this.tried.add(peer);
    this.joining = this.join(peer).finally(() => (this.joining = null));
    return this.joining;
  }

  /** What `peer` offers to join from: its final state's epoch and the chain up to it; null if nothing. */
  private async offer(peer: string): Promise<Offer | null> {
    const links: ServedLink[] = [];
    const prefix: unknown[] = [];
    let chars = 0;
    const maxChars = this.init.maxChainChars ?? MAX_CHAIN_CHARS;
    let stateEpoch: number;
    try {
      stateEpoch = joinReply.parse(
        await this.call(peer, 'sync.join', null, (c) => {
          // Past the budget, chunks are dropped (and the join fails): memory stays bounded.
          chars += JSON.stringify(c).length;
          if (chars > maxChars) return;
          const chunk = joinChunk.safeParse(c);
          if (!chunk.success) return;
          if ('link' in chunk.data && links.length < MAX_LINKS) links.push(chunk.data.link as ServedLink);
          if ('prefix' in chunk.data && prefix.length < MAX_PREFIX_RECORDS) prefix.push(...chunk.data.prefix);
        }),
      ).stateEpoch;
    } catch {
      return null; // it does not answer: sync as usual
    }
    if (stateEpoch < 0) return null; // nothing final yet
    if (chars > maxChars) return { peer, stateEpoch, chain: [], prefix: [], tooLarge: maxChars };
    const chain = links.filter((l) => l.epoch <= stateEpoch).sort((a, b) => a.epoch - b.epoch);
    return { peer, stateEpoch, chain, prefix, tooLarge: null };
  }

  private async join(peer: string, attempt = 1): Promise<boolean> {
    const started = this.components.clock.now();
    const { book, snapshot, clock } = this.components;
    const network = book.network;
    const tempo = epochBlocks(network);
    const own = snapshot.get()!;
    const mine = own.lastVotedFinal;
    const nowBlock = blockAt(network, clock.now());
    const offer = await this.offer(peer);
    // A node with nothing final joins any final state; one with history only when it is well behind.
    const enough = mine < 0 ? 1 : mine + (this.init.minLead ?? 3);
    if (!offer || offer.stateEpoch < enough) return false;
    const { stateEpoch, chain } = offer;
    // A node that holds records of the epochs the base would replace, but nothing final yet, is taking part
    // from the start (finality just has not come): it keeps its history and syncs, it does not start over.
    if (mine < 0 && (await this.components.store.all()).some((r) => r.block < (stateEpoch + 1) * tempo)) return false;
    const oldBase = await this.components.store.base();
    try {
      if (offer.tooLarge !== null) throw new Error(`it served more than ${offer.tooLarge} characters of chain`);
      if ((stateEpoch + 1) * tempo > nowBlock)
        throw new Error(`it offers epoch ${stateEpoch}, which has not ended by this node's block ${nowBlock}`);
      if (
        chain[0]?.epoch !== 0 ||
        chain.at(-1)!.epoch !== stateEpoch ||
        chain.some((l, k) => k > 0 && l.epoch <= chain[k - 1]!.epoch)
      )
        throw new Error(`it served ${chain.length} links that do not run from epoch 0 to ${stateEpoch} in order`);
      // Where the walk starts. A node with final history starts from its own last final checkpoint, and the
      // chain served must be its own wherever both hold a link: no peer can rewrite what this node holds final.
      // A new node (or one whose own checkpoint the served proof cannot be walked from, because the proof skips
      // past it) replays the voterless epochs itself, and a second peer must serve the same chain.
      const ownFinal = own.chain.filter((l) => l.epoch <= mine);
      const served = new Map(chain.map((l) => [l.epoch, l]));
      const differs = ownFinal.find((l) => {
        const theirs = served.get(l.epoch);
        return theirs && linkHash(network.networkId, theirs) !== linkHash(network.networkId, l);
      });
      if (differs) throw new Error(`its chain differs from this node's final history at epoch ${differs.epoch}`);
      const anchor = ownFinal.at(-1);
      let walk: ChainWalk | null = null;
      let start: TrustedPoint | null = null;
      let prefixRecords: LedgerRecord[] = [];
      if (anchor) {
        start = { epoch: mine, hash: linkHash(network.networkId, anchor), voters: votersOfLink(anchor) };
        walk = await followChain(network, chain, start, nowBlock);
        // This node keeps serving the voterless prefix of its own history (its records there are dropped below).
        const prefixEnd = voterlessPrefix(own.chain) * tempo;
        prefixRecords = [
          ...(oldBase?.prefix ?? []),
          ...(await this.components.store.all()).filter((r) => r.block < prefixEnd).map((r) => r.record),
        ];
      }
      if (!walk || walk.through !== stateEpoch) {
        const prefix = voterlessPrefix(chain);
        if (prefix > MAX_PREFIX_EPOCHS)
          throw new Error(`its chain starts with ${prefix} epochs nobody voted on (at most ${MAX_PREFIX_EPOCHS})`);
        await this.confirmWithAnotherPeer(offer);
        const records = await checkedRecords(network, offer.prefix, nowBlock);
        const replayed = replayPrefix(network, chain, prefix, records);
        if ('error' in replayed) throw new Error(replayed.error);
        start = replayed.point;
        prefixRecords = records.map((r) => r.record);
        walk = await followChain(network, chain, start, nowBlock);
      }
      if (walk.through !== stateEpoch) throw new Error(walk.stopped ?? `the chain ends at epoch ${walk.through}`);
      if (stateEpoch <= start!.epoch || Object.keys(walk.votes).length === 0)
        throw new Error(`no votes prove its chain past epoch ${start!.epoch}`);
      let text = '';
      const answer = await this.call(peer, 'sync.state', { epoch: stateEpoch }, (c) => {
        if (typeof c === 'string' && text.length + c.length <= MAX_STATE_CHARS) text += c;
      });
      const held = (answer as { held?: unknown } | null)?.held;
      if (text === '' && typeof held === 'number' && held > stateEpoch)
        throw new StateMovedOn(`its final state moved on from epoch ${stateEpoch} to ${held} while this node checked`);
      if (!stateTextHolds(chain.at(-1)!, text))
        throw new Error(`its state of epoch ${stateEpoch} is not the one the checkpoint names`);
      checkState(network, text);
      // What it keeps, to serve joins on: its own final links and votes with the ones just proven, thinned.
      const ownVotes = [
        ...(oldBase?.votes ?? []),
        ...(await this.components.store.all()).filter((r) => r.kind === 'checkpoint').map((r) => r.record),
      ];
      const links = [...ownFinal.filter((l) => !served.has(l.epoch)), ...chain.map(({ votes: _, ...link }) => link)];
      const proof = keptProof(network, links, [...ownVotes, ...Object.values(walk.votes).flat()], stateEpoch);
      const base: JoinedBase = {
        epoch: stateEpoch,
        stateText: text,
        ...proof,
        prefix: prefixRecords,
        from: peer,
        at: clock.now(),
      };
      await this.components.store.setBase(base, (stateEpoch + 1) * tempo);
      await book.reloadHead();
      await this.components.replayNow();
      this.state.set({
        last: {
          epoch: stateEpoch,
          from: peer,
          links: chain.length,
          prefixRecords: prefixRecords.length,
          stateChars: text.length,
          ms: clock.now() - started,
        },
      });
      return true;
    } catch (err) {
      // Checking a long chain on a slow machine can take longer than an epoch: ask the same peer again for its
      // newer state (a node that gives up here syncs all of history instead).
      if (err instanceof StateMovedOn && attempt < JOIN_ATTEMPTS) return this.join(peer, attempt + 1);
      this.state.set({ last: { from: peer, error: (err as Error).message } });
      return false;
    }
  }

  /**
   * A new node has no history to check a chain against: another direct peer must serve the same checkpoints for
   * every epoch both cover (so one lying peer is not enough; all of them is an eclipse, docs/ledger.md).
   */
  private async confirmWithAnotherPeer(offer: Offer): Promise<void> {
    const network = this.components.book.network;
    const { peers } = this.components;
    const othersNow = () => peers.direct().filter((p) => p !== offer.peer);
    // A new node has often met one peer when its first sync starts: give discovery a moment to bring another.
    if (othersNow().length === 0)
      await waitFor(
        peers.peers,
        () => othersNow().length > 0,
        AbortSignal.timeout(this.init.witnessWaitMs ?? 20_000),
      ).catch(() => {});
    const others = othersNow().slice(0, MAX_WITNESSES);
    let confirmed = false;
    for (const other of others) {
      const theirs = await this.offer(other);
      if (!theirs || theirs.tooLarge !== null || theirs.stateEpoch < 1) continue;
      // Proofs may be thinned differently: they must agree wherever both hold a link.
      const mine = new Map(offer.chain.map((l) => [l.epoch, l]));
      for (const b of theirs.chain) {
        const a = mine.get(b.epoch);
        if (a && linkHash(network.networkId, a) !== linkHash(network.networkId, b))
          throw new Error(
            `${other} serves another checkpoint of epoch ${b.epoch}: peers disagree, so this node syncs instead`,
          );
      }
      confirmed = true;
    }
    if (!confirmed) throw new Error('no second peer confirms its chain');
  }

  private call(peer: string, method: string, params: Json, onChunk: (c: Json) => void): Promise<Json> {
    return this.components.rpc.call(peer, method, params, { protocol: PROTOCOLS.sync, timeoutMs: 30_000, onChunk });
  }
}

/** The well-formed, correctly signed records of this network among `raw` (the rest are dropped). */
async function checkedRecords(
  network: JoinComponents['book']['network'],
  raw: readonly unknown[],
  nowBlock: number,
): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  for (const r of raw) {
    try {
      out.push(await checkRecord(r, network, { nowBlock, minBlock: 0 }));
    } catch {
      // A bad record in the prefix makes the prefix replay disagree with the chain; that is the error reported.
    }
  }
  return out;
}

/**
 * The downloaded state must parse back to exactly its text (its hash already matched a verified checkpoint, so
 * this guards the parser, not the content) and fit the network's bounds.
 */
function checkState(network: JoinComponents['book']['network'], text: string): void {
  let state;
  try {
    state = stateFromText(text);
  } catch (err) {
    throw new Error(`its state does not parse: ${(err as Error).message}`, { cause: err });
  }
  if (stateText(state) !== text) throw new Error('its state does not read back as the text it sent');
  for (const sub of state.subnets) {
    const cfg = network.subnets.find((c) => c.netuid === sub.netuid);
    if (!cfg || sub.uids.length > cfg.maxUids) throw new Error(`its state of subnet ${sub.netuid} is out of bounds`);
  }
}
