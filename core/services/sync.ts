/**
 * Anti-entropy sync (`/webtensor/sync/1`): every few seconds, compare bucket digests with a random direct peer,
 * list the ids in the buckets that differ, and fetch the records this node lacks. Serves the same three methods
 * to peers, each bounded (200 buckets or ids per request, ids in chunks of 500, records in chunks of 40).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { z } from 'zod';
import { SYNC_BUCKET_BLOCKS, type StoredRecordRow } from '../../shared/ledger/db.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import type { LedgerStore } from '../platform.ts';
import { Store, type ReadableStore } from '../store.ts';
import type { PeerTable } from './peers.ts';
import type { FinalRecordSets } from './final-sets.ts';
import type { RecordBook, RecordSource } from './record-book.ts';
import { checkpointIds, finalThrough } from '../../shared/ledger/finality.ts';
import { servedLinks, voterlessPrefix, type ServedLink } from '../../shared/ledger/join.ts';
import { epochBlocks } from '../../shared/ledger/config.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import { recordId, type LedgerRecord } from '../../shared/ledger/records.ts';
import type { Join } from './join.ts';
import type { RpcRouter } from './rpc.ts';

export interface SyncComponents {
  store: LedgerStore;
  book: RecordBook;
  rpc: RpcRouter;
  peers: Pick<PeerTable, 'direct' | 'peers'>;
  /** The latest replay: which epochs are final (not synced), and this node's checkpoints (served to adopters). */
  snapshot: ReadableStore<LedgerSnapshot | null>;
  /** The record sets of epochs this node saw final: served as they were, whatever its store holds since. */
  finalSets: Pick<FinalRecordSets, 'get'>;
  /** Asked before syncing with a peer: a new node far behind starts from the peer's final checkpoint instead. */
  join?: Pick<Join, 'maybeJoin'>;
}

/** A checkpoint's body and the ids its recordsRoot covers, as a peer served them (check before use). */
export interface CheckpointRecordSet {
  epoch: number;
  recordsRoot: string;
  stateRoot: string;
  previous: string;
  ids: string[];
}

/** What this node serves a joining one: its chain up to its final state, and the voterless prefix's records. */
interface JoinOffer {
  stateEpoch: number;
  links: ServedLink[];
  prefix: LedgerRecord[];
}

export interface SyncInit {
  /** How often to sync with a random direct peer. */
  intervalMs?: number;
}

const bucketsParams = z.object({ buckets: z.array(z.number().int().nonnegative()).max(200) });
const digestsParams = z.union([z.null(), z.object({ from: z.number().int().nonnegative() })]);
const checkpointParams = z.object({ epoch: z.number().int().nonnegative() });
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const checkpointReply = z.object({ epoch: z.number().int(), recordsRoot: hex64, stateRoot: hex64, previous: hex64 });
const idsParams = z.object({ ids: z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(200) });
const digestsReply = z.object({ buckets: z.record(z.string().regex(/^\d+$/), z.string()) });
const idsChunk = z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(500);
/** State text per chunk: JSON escaping can double it, and a frame holds 64 KiB. */
const STATE_CHUNK_CHARS = 16_000;

/** sha256 of the sorted ids in each bucket of SYNC_BUCKET_BLOCKS blocks (from block `from` on). */
export function bucketDigests(rows: readonly StoredRecordRow[], from = 0): Record<string, string> {
  const buckets = new Map<number, string[]>();
  for (const r of rows) {
    if (r.block < from) continue;
    const b = Math.floor(r.block / SYNC_BUCKET_BLOCKS);
    const ids = buckets.get(b) ?? [];
    ids.push(r.id);
    buckets.set(b, ids);
  }
  const out: Record<string, string> = {};
  for (const [b, ids] of buckets) out[String(b)] = bytesToHex(sha256(new TextEncoder().encode(ids.sort().join('\n'))));
  return out;
}

export class Sync {
  /** Completed syncs. */
  readonly syncs = new Store(0);
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly syncing = new Set<string>();
  /** Direct peers already synced with on connecting. */
  private readonly greeted = new Set<string>();
  private stopWatching: (() => void) | null = null;
  private offerCache: JoinOffer | null = null;

  constructor(
    private readonly components: SyncComponents,
    private readonly init: SyncInit = {},
  ) {}

  async start(): Promise<void> {
    const { store, rpc } = this.components;
    await rpc.handle(
      PROTOCOLS.sync,
      {
        'sync.digests': {
          check: (p) => (digestsParams.safeParse(p).success ? null : 'params must be null or {from: block}'),
          run: async (p) => ({ buckets: bucketDigests(await store.all(), digestsParams.parse(p)?.from ?? 0) }),
        },
        'sync.checkpoint': {
          check: (p) => (checkpointParams.safeParse(p).success ? null : 'params must be {epoch: number}'),
          run: async (p, ctx) => {
            const { epoch } = checkpointParams.parse(p);
            const known = this.components.finalSets.get(epoch);
            if (known) {
              for (let k = 0; k < known.ids.length; k += 500) await ctx.emit(known.ids.slice(k, k + 500));
              return { epoch, recordsRoot: known.recordsRoot, stateRoot: known.stateRoot, previous: known.previous };
            }
            const snapshot = this.components.snapshot.get();
            const mine = snapshot?.checkpoints.find((c) => c.epoch === epoch);
            if (!snapshot || !mine) throw new RpcError('bad-params', `this node holds no checkpoint of epoch ${epoch}`);
            const ids = checkpointIds(this.components.book.network, await store.all(), snapshot.refused, epoch);
            for (let k = 0; k < ids.length; k += 500) await ctx.emit(ids.slice(k, k + 500));
            return { epoch, recordsRoot: mine.recordsRoot, stateRoot: mine.stateRoot, previous: mine.previous };
          },
        },
        // Joining from a checkpoint: the chain of checkpoints up to the state this node serves, each with the
        // votes that prove it, then the records of the voterless epochs at the start (docs/ledger.md).
        'sync.join': {
          check: (p) => (p === null ? null : 'params must be null'),
          run: async (_p, ctx) => {
            // Nothing final yet is an answer, not an error: every new peer asks, and errors count against it.
            const offer = await this.joinOffer();
            if (!offer) return { stateEpoch: -1, links: 0, prefix: 0 };
            for (const link of offer.links) await ctx.emit({ link } as unknown as Json);
            for (let k = 0; k < offer.prefix.length; k += 40)
              await ctx.emit({ prefix: offer.prefix.slice(k, k + 40) } as unknown as Json);
            return { stateEpoch: offer.stateEpoch, links: offer.links.length, prefix: offer.prefix.length };
          },
        },
        'sync.state': {
          check: (p) => (checkpointParams.safeParse(p).success ? null : 'params must be {epoch: number}'),
          run: async (p, ctx) => {
            const { epoch } = checkpointParams.parse(p);
            const held = this.components.snapshot.get()?.finalState;
            // Its final state may have moved on since the asker's sync.join: answer with none (the asker's hash
            // check then fails and it tries elsewhere), not with an error that would count against it.
            if (!held || held.epoch !== epoch) return { epoch, chars: 0, held: held?.epoch ?? -1 };
            for (let k = 0; k < held.text.length; k += STATE_CHUNK_CHARS)
              await ctx.emit(held.text.slice(k, k + STATE_CHUNK_CHARS));
            return { epoch, chars: held.text.length, held: held.epoch };
          },
        },
        'sync.ids': {
          check: (p) =>
            bucketsParams.safeParse(p).success ? null : 'params must be {buckets: number[] (at most 200)}',
          run: async (p, ctx) => {
            const wanted = new Set(bucketsParams.parse(p).buckets);
            const ids = (await store.all())
              .filter((r) => wanted.has(Math.floor(r.block / SYNC_BUCKET_BLOCKS)))
              .map((r) => r.id);
            for (let k = 0; k < ids.length; k += 500) await ctx.emit(ids.slice(k, k + 500));
            return ids.length;
          },
        },
        'sync.records': {
          check: (p) => (idsParams.safeParse(p).success ? null : 'params must be {ids: sha256 hex[] (at most 200)}'),
          run: async (p, ctx) => {
            const rows = (await store.get(idsParams.parse(p).ids)).filter((r): r is StoredRecordRow => !!r);
            for (let k = 0; k < rows.length; k += 40)
              await ctx.emit(rows.slice(k, k + 40).map((r) => r.record) as unknown as Json);
            return rows.length;
          },
        },
      },
      { maxInboundStreams: 8 },
    );
    this.timer = setInterval(() => void this.syncWithSomeone(), this.init.intervalMs ?? 3000);
    // A node that just joined (or a peer that just connected) catches up at once, not at the next random pick.
    this.stopWatching = this.components.peers.peers.subscribe((peers) => {
      for (const p of peers)
        if (p.direct && !this.greeted.has(p.peerId)) {
          this.greeted.add(p.peerId);
          void this.syncWith(p.peerId);
        }
    });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stopWatching?.();
  }

  private async syncWithSomeone(): Promise<void> {
    const peers = this.components.peers.direct();
    if (peers.length > 0) await this.syncWith(peers[Math.floor(Math.random() * peers.length)]!);
  }

  /** Compare bucket digests with a peer, then fetch and check the records we lack. Returns how many were new. */
  async syncWith(peer: string): Promise<number> {
    if (this.syncing.has(peer)) return 0;
    this.syncing.add(peer);
    const { store, book, rpc } = this.components;
    const call = (method: string, params: Json, onChunk?: (c: Json) => void) =>
      rpc.call(peer, method, params, { protocol: PROTOCOLS.sync, timeoutMs: 20_000, ...(onChunk ? { onChunk } : {}) });
    try {
      await this.components.join?.maybeJoin(peer);
      // Final epochs are settled: compare only what came after them.
      const from = finalThrough(book.network, this.components.snapshot.get()?.lastVotedFinal ?? -1);
      const theirs = digestsReply.parse(await call('sync.digests', { from })).buckets;
      const ours = bucketDigests(await store.all(), from);
      const differing = Object.keys(theirs)
        .filter((b) => theirs[b] !== ours[b])
        .map(Number)
        .slice(0, 200);
      if (differing.length === 0) return 0;
      const theirIds: string[] = [];
      await call('sync.ids', { buckets: differing }, (c) => {
        const ids = idsChunk.safeParse(c);
        if (ids.success) theirIds.push(...ids.data);
      });
      const held = await store.get(theirIds);
      const missing = theirIds.filter((_, k) => !held[k]);
      let added = 0;
      for (let k = 0; k < missing.length; k += 200) {
        const batch: unknown[] = [];
        await call('sync.records', { ids: missing.slice(k, k + 200) }, (c) => {
          if (Array.isArray(c)) batch.push(...c.slice(0, 40));
        });
        added += await book.accept(batch, `sync:${peer}`);
      }
      this.syncs.set(this.syncs.get() + 1);
      return added;
    } catch (err) {
      // A stopping node's syncs end with its streams; nothing to report then.
      if (this.timer) console.warn(`sync with ${peer} failed: ${(err as Error).message}`);
      return 0;
    } finally {
      this.syncing.delete(peer);
    }
  }

  /**
   * What this node offers a joining node: its chain up to the final state it holds, with the votes proving each
   * link (from its store, and those its own base kept), and the records of the voterless epochs at the start.
   */
  private async joinOffer(): Promise<JoinOffer | null> {
    const snapshot = this.components.snapshot.get();
    const state = snapshot?.finalState;
    if (!snapshot || !state) return null;
    // Built once per final epoch: every new peer asks, and building reads the whole store.
    if (this.offerCache?.stateEpoch === state.epoch) return this.offerCache;
    const { store, book } = this.components;
    const base = await store.base();
    const rows = await store.all();
    const chain = snapshot.chain.slice(0, state.epoch + 1);
    const votes = [...(base?.votes ?? []), ...rows.filter((r) => r.kind === 'checkpoint').map((r) => r.record)];
    const prefixEnd = voterlessPrefix(chain) * epochBlocks(book.network);
    const prefix = [...(base?.prefix ?? []), ...rows.filter((r) => r.block < prefixEnd).map((r) => r.record)];
    this.offerCache = { stateEpoch: state.epoch, links: servedLinks(book.network, chain, votes), prefix };
    return this.offerCache;
  }

  /** Ask `peer` for its checkpoint of `epoch` and the ids it covers (the caller checks them against a vote). */
  async fetchCheckpoint(peer: string, epoch: number): Promise<CheckpointRecordSet> {
    const ids: string[] = [];
    const body = checkpointReply.parse(
      await this.components.rpc.call(
        peer,
        'sync.checkpoint',
        { epoch },
        {
          protocol: PROTOCOLS.sync,
          timeoutMs: 20_000,
          onChunk: (c) => {
            const chunk = idsChunk.safeParse(c);
            if (chunk.success && ids.length + chunk.data.length <= 100_000) ids.push(...chunk.data);
          },
        },
      ),
    );
    return { ...body, ids };
  }

  /**
   * Fetch records by id from `peer` and hand them to the record book as `source`. Returns how many were new.
   * Only the records asked for are taken (an adopting node must not take more than the certified set from a voter).
   */
  async fetchRecords(peer: string, ids: readonly string[], source: RecordSource): Promise<number> {
    const wanted = new Set(ids);
    let added = 0;
    for (let k = 0; k < ids.length; k += 200) {
      const batch: unknown[] = [];
      await this.components.rpc.call(
        peer,
        'sync.records',
        { ids: ids.slice(k, k + 200) },
        {
          protocol: PROTOCOLS.sync,
          timeoutMs: 20_000,
          onChunk: (c) => {
            if (Array.isArray(c)) batch.push(...c.slice(0, 40));
          },
        },
      );
      added += await this.components.book.accept(batch.filter(isOneOf(wanted)), source);
    }
    return added;
  }
}

/** Whether a raw record is one of `ids` (by its record id); malformed ones are not. */
function isOneOf(ids: ReadonlySet<string>): (raw: unknown) => boolean {
  return (raw) => {
    try {
      return ids.has(recordId(raw as LedgerRecord));
    } catch {
      return false;
    }
  };
}
