/**
 * Join: a new node, or one that was away for several final epochs, starts from the state at a peer's last final
 * checkpoint instead of downloading and replaying all history. It checks everything before trusting it (see
 * shared/ledger/join.ts): it replays the voterless epochs at the start itself, follows the chain of checkpoints by
 * their votes, and takes the state only if it hashes to what the last verified checkpoint names. Anything wrong,
 * and it syncs the whole history instead. docs/ledger.md, "Joining from a checkpoint".
 */
import { z } from 'zod';
import { epochBlocks } from '../../shared/ledger/config.ts';
import {
  followChain,
  replayPrefix,
  stateTextHolds,
  voterlessPrefix,
  type JoinedBase,
  type ServedLink,
} from '../../shared/ledger/join.ts';
import { checkRecord } from '../../shared/ledger/records.ts';
import type { StoredRecord } from '../../shared/ledger/replay.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import type { LedgerStore } from '../platform.ts';
import { Store, type ReadableStore } from '../store.ts';
import type { RecordBook } from './record-book.ts';
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
  store: Pick<LedgerStore, 'setBase'>;
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
}

// What a joining node takes from one peer at most: bounds, so a peer cannot make it hold unbounded data (each
// frame is at most 64 KiB; these bound how many it keeps).
const MAX_LINKS = 100_000;
const MAX_PREFIX_RECORDS = 20_000;
const MAX_CHAIN_CHARS = 32 * 1024 * 1024;
const MAX_STATE_CHARS = 64 * 1024 * 1024;

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
    if (this.joining) return this.joining;
    // Until the first replay this node does not know how far it is behind (it may hold all of history).
    if (this.tried.has(peer) || !this.components.snapshot.get()) return false;
    this.tried.add(peer);
    this.joining = this.join(peer).finally(() => (this.joining = null));
    return this.joining;
  }

  private async join(peer: string): Promise<boolean> {
    const started = this.components.clock.now();
    const { book } = this.components;
    const network = book.network;
    const links: ServedLink[] = [];
    const prefixRaw: unknown[] = [];
    let stateEpoch: number;
    let chars = 0;
    const maxChars = this.init.maxChainChars ?? MAX_CHAIN_CHARS;
    try {
      stateEpoch = joinReply.parse(
        await this.call(peer, 'sync.join', null, (c) => {
          // Past the budget, chunks are dropped (and the join fails below): memory stays bounded.
          chars += JSON.stringify(c).length;
          if (chars > maxChars) return;
          const chunk = joinChunk.safeParse(c);
          if (!chunk.success) return;
          if ('link' in chunk.data && links.length < MAX_LINKS) links.push(chunk.data.link as ServedLink);
          if ('prefix' in chunk.data && prefixRaw.length < MAX_PREFIX_RECORDS) prefixRaw.push(...chunk.data.prefix);
        }),
      ).stateEpoch;
    } catch {
      return false; // it has nothing to offer (no final state yet), or does not answer: sync as usual
    }
    const mine = this.components.snapshot.get()?.lastVotedFinal ?? -1;
    // -1: the peer holds no final state yet. A node with nothing final joins any final state; one with history
    // only when it is well behind (joining drops what it holds before the base).
    const enough = mine < 0 ? 1 : mine + (this.init.minLead ?? 3);
    if (stateEpoch < 0 || stateEpoch < enough) return false;
    try {
      if (chars > maxChars) throw new Error(`it served more than ${maxChars} characters of chain`);
      const chain = links.filter((l) => l.epoch <= stateEpoch).sort((a, b) => a.epoch - b.epoch);
      if (chain.length !== stateEpoch + 1)
        throw new Error(`it served ${chain.length} links for ${stateEpoch + 1} epochs`);
      const prefix = voterlessPrefix(chain);
      const records = await checkedRecords(network, prefixRaw);
      const start = replayPrefix(network, chain, prefix, records);
      if ('error' in start) throw new Error(start.error);
      const walk = await followChain(network, chain, start.point);
      if (walk.through !== stateEpoch) throw new Error(walk.stopped ?? `the chain ends at epoch ${walk.through}`);
      let text = '';
      await this.call(peer, 'sync.state', { epoch: stateEpoch }, (c) => {
        if (typeof c === 'string' && text.length + c.length <= MAX_STATE_CHARS) text += c;
      });
      if (!stateTextHolds(chain[stateEpoch]!, text))
        throw new Error(`its state of epoch ${stateEpoch} is not the one the checkpoint names`);
      const base: JoinedBase = {
        epoch: stateEpoch,
        stateText: text,
        chain: chain.map(({ votes: _, ...link }) => link),
        votes: Object.values(walk.votes).flat(),
        prefix: records.map((r) => r.record),
        from: peer,
        at: this.components.clock.now(),
      };
      await this.components.store.setBase(base, (stateEpoch + 1) * epochBlocks(network));
      await book.reloadHead();
      await this.components.replayNow();
      this.state.set({
        last: {
          epoch: stateEpoch,
          from: peer,
          links: chain.length,
          prefixRecords: records.length,
          stateChars: text.length,
          ms: this.components.clock.now() - started,
        },
      });
      return true;
    } catch (err) {
      this.state.set({ last: { from: peer, error: (err as Error).message } });
      return false;
    }
  }

  private call(peer: string, method: string, params: Json, onChunk: (c: Json) => void): Promise<Json> {
    return this.components.rpc.call(peer, method, params, { protocol: PROTOCOLS.sync, timeoutMs: 30_000, onChunk });
  }
}

/** The well-formed, correctly signed records of this network among `raw` (the rest are dropped). */
async function checkedRecords(
  network: JoinComponents['book']['network'],
  raw: readonly unknown[],
): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  for (const r of raw) {
    try {
      out.push(await checkRecord(r, network, { nowBlock: Number.MAX_SAFE_INTEGER, minBlock: 0 }));
    } catch {
      // A bad record in the prefix makes the prefix replay disagree with the chain; that is the error reported.
    }
  }
  return out;
}
