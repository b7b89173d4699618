/**
 * Anti-entropy sync (`/webtensor/sync/1`): every few seconds, reconcile the record ids after the last final epoch
 * with a random direct peer (`sync.reconcile`, range-based: shared/ledger/reconcile.ts) and fetch the records
 * this node lacks (`sync.records`); the peer fetches those it lacks from us the same way. Every request is
 * bounded in ranges and ids, every answer in bytes: no frame outgrows MAX_FRAME_BYTES, however long the history.
 * Also serves what joining and finality ask for: `sync.join`, `sync.state`, `sync.checkpoint`.
 */
import { z } from 'zod';
import type { StoredRecordRow } from '../../shared/ledger/db.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import type { LedgerStore } from '../platform.ts';
import { Store, type ReadableStore } from '../store.ts';
import type { PeerTable } from './peers.ts';
import type { FinalRecordSets } from './final-sets.ts';
import type { RecordBook, RecordSource } from './record-book.ts';
import { checkpointIds, finalThrough } from '../../shared/ledger/finality.ts';
import { DENSE_EPOCHS, servedLinks, thinProof, voterlessPrefix, type ServedLink } from '../../shared/ledger/join.ts';
import { epochBlocks } from '../../shared/ledger/config.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { MAX_FRAME_BYTES, RpcError } from '../../shared/p2p/messages.ts';
import { recordId, type LedgerRecord } from '../../shared/ledger/records.ts';
import { answer, LIMITS, Reconciliation, type AskRange } from '../../shared/ledger/reconcile.ts';
import { SyncIndex } from './sync-index.ts';
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

const checkpointParams = z.object({ epoch: z.number().int().nonnegative() });
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const checkpointReply = z.object({ epoch: z.number().int(), recordsRoot: hex64, stateRoot: hex64, previous: hex64 });
const idsChunk = z.array(hex64).max(500);
/** State text per chunk: every character of a JSON text takes at most 3 bytes re-encoded, and a frame 64 KiB. */
const STATE_CHUNK_CHARS = 16_000;
/** Ids per `sync.records` request. */
const MAX_RECORD_IDS = 200;
/** Bytes of records per chunk: a frame less room for the chunk's envelope. Any one record fits by construction. */
const RECORD_CHUNK_BYTES = MAX_FRAME_BYTES - 1024;
/** Ids waiting to be fetched from one peer that showed we lack them; more wait for a later sync. */
const MAX_PULL_IDS = 5000;
/** Rounds of one reconciliation; a longer one (a node far behind) goes on at the next sync, its records kept. */
const MAX_ROUNDS = 500;

// Ranges of `sync.reconcile` (shared/ledger/reconcile.ts): bounds are [block, hex prefix of an id].
const bound = z.tuple([
  z
    .number()
    .int()
    .nonnegative()
    .max(2 ** 48),
  z.string().regex(/^[0-9a-f]{0,64}$/),
]);
const span = { lo: bound, hi: bound.nullable() };
const fpRange = z.strictObject({ ...span, fp: z.string().regex(/^[0-9a-f]{32}$/), n: z.number().int().nonnegative() });
const idsRange = z.strictObject({ ...span, ids: z.array(hex64).max(LIMITS.leaf) });
const haveRange = z.strictObject({ ...span, have: z.array(hex64).max(LIMITS.leaf) });
const reconcileParams = z
  .strictObject({
    ranges: z
      .array(z.union([fpRange, idsRange]))
      .min(1)
      .max(LIMITS.maxRanges),
  })
  .refine((p) => p.ranges.reduce((n, r) => n + ('ids' in r ? r.ids.length : 0), 0) <= LIMITS.maxIds, {
    message: `at most ${LIMITS.maxIds} ids in all`,
  });
const reconcileReply = z.strictObject({
  ranges: z.array(z.union([fpRange, idsRange, haveRange])).max(LIMITS.maxRanges * LIMITS.split),
  handled: z.number().int().nonnegative(),
});
const recordsParams = z.strictObject({ ids: z.array(hex64).min(1).max(MAX_RECORD_IDS) });

const encoder = new TextEncoder();

/**
 * `items` in chunks of at most `maxBytes` of JSON (and `maxItems` items). An item larger than `maxBytes` alone
 * is left out: it could not be sent (a record from before records were bounded).
 */
export function chunksByBytes<T>(items: readonly T[], maxBytes: number, maxItems = Infinity): T[][] {
  const chunks: T[][] = [];
  let chunk: T[] = [];
  let bytes = 2;
  for (const item of items) {
    const size = encoder.encode(JSON.stringify(item)).byteLength + 1;
    if (size + 2 > maxBytes) continue;
    if (chunk.length > 0 && (bytes + size > maxBytes || chunk.length >= maxItems)) {
      chunks.push(chunk);
      chunk = [];
      bytes = 2;
    }
    chunk.push(item);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/** A refusal of the params, in a sentence (the first issue zod found). */
function refusal(schema: z.ZodType, params: unknown, usage: string): string | null {
  const parsed = schema.safeParse(params);
  if (parsed.success) return null;
  const issue = parsed.error.issues[0]!;
  return `${usage} (${issue.path.join('.') || 'params'}: ${issue.message})`;
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
  /** Ids to fetch from peers whose requests showed this node lacks them (one fetch at a time per peer). */
  private readonly pulling = new Map<string, Set<string>>();
  private stopped = false;
  private readonly index: SyncIndex;

  constructor(
    private readonly components: SyncComponents,
    private readonly init: SyncInit = {},
  ) {
    this.index = new SyncIndex(components.store, components.book);
  }

  async start(): Promise<void> {
    const { store, rpc } = this.components;
    await rpc.handle(
      PROTOCOLS.sync,
      {
        // Compare ranges of (block, id) order: answers within the byte budget, the rest is asked for again.
        'sync.reconcile': {
          check: (p) => refusal(reconcileParams, p, `params must be {ranges: (at most ${LIMITS.maxRanges})}`),
          run: async (p, ctx) => {
            const { ranges } = reconcileParams.parse(p);
            const index = await this.index.current();
            const needFrom = finalThrough(this.components.book.network, this.lastVotedFinal());
            const { answer: reply, need } = answer(index, ranges as AskRange[], { needFrom });
            // The asker holds records we lack: fetch them from it (at most one fetch per peer at a time).
            if (need.length > 0) void this.pull(ctx.peer, need);
            return reply as unknown as Json;
          },
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
            // At most 40 records a chunk (what a joining node takes), and no more bytes than a frame holds.
            for (const prefix of chunksByBytes(offer.prefix, RECORD_CHUNK_BYTES - 32, 40))
              await ctx.emit({ prefix } as unknown as Json);
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
        'sync.records': {
          check: (p) => refusal(recordsParams, p, `params must be {ids: sha256 hex[] (1-${MAX_RECORD_IDS})}`),
          run: async (p, ctx) => {
            const rows = (await store.get(recordsParams.parse(p).ids)).filter((r): r is StoredRecordRow => !!r);
            const records = rows.map((r) => r.record);
            for (const chunk of chunksByBytes(records, RECORD_CHUNK_BYTES)) await ctx.emit(chunk as unknown as Json);
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
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stopWatching?.();
    this.index.stop();
  }

  private lastVotedFinal(): number {
    return this.components.snapshot.get()?.lastVotedFinal ?? -1;
  }

  private async syncWithSomeone(): Promise<void> {
    const peers = this.components.peers.direct();
    if (peers.length > 0) await this.syncWith(peers[Math.floor(Math.random() * peers.length)]!);
  }

  /**
   * Reconcile the records after the last final epoch with a peer, fetching what this node lacks as it is found
   * (so a reconciliation cut short still keeps what it fetched). Returns how many records were new.
   */
  async syncWith(peer: string): Promise<number> {
    if (this.syncing.has(peer)) return 0;
    this.syncing.add(peer);
    const { book, rpc } = this.components;
    let added = 0;
    try {
      await this.components.join?.maybeJoin(peer);
      // Final epochs are settled: compare only what came after them.
      const from = finalThrough(book.network, this.lastVotedFinal());
      const rec = new Reconciliation(await this.index.current(), from);
      const lacking: string[] = [];
      for (let round = 0; !rec.done && round < MAX_ROUNDS; round++) {
        const asked = rec.next();
        const raw = await rpc.call(peer, 'sync.reconcile', { ranges: asked } as unknown as Json, {
          protocol: PROTOCOLS.sync,
          timeoutMs: 20_000,
        });
        const reply = reconcileReply.safeParse(raw);
        try {
          if (!reply.success) throw new Error(`malformed answer: ${reply.error.issues[0]!.message}`);
          rec.take(asked, reply.data);
        } catch (err) {
          rpc.countRefusal(peer);
          throw err;
        }
        lacking.push(...rec.wanted());
        // Fetched as found, in groups the book admits together (see fetchRecords).
        while (lacking.length >= ACCEPT_BATCH)
          added += await this.fetchRecords(peer, lacking.splice(0, ACCEPT_BATCH), `sync:${peer}`);
      }
      if (lacking.length > 0) added += await this.fetchRecords(peer, lacking, `sync:${peer}`);
      this.syncs.set(this.syncs.get() + 1);
      return added;
    } catch (err) {
      // A stopping node's syncs end with its streams; nothing to report then.
      if (!this.stopped) console.warn(`sync with ${peer} failed: ${(err as Error).message}`);
      return added;
    } finally {
      this.syncing.delete(peer);
    }
  }

  /**
   * Fetch records a peer's request showed it holds and this node lacks: queued per peer (bounded), fetched by one
   * loop per peer while the peer goes on asking.
   */
  private async pull(peer: string, ids: readonly string[]): Promise<void> {
    if (this.stopped) return;
    const queued = this.pulling.get(peer);
    if (queued) {
      for (const id of ids) if (queued.size < MAX_PULL_IDS) queued.add(id);
      return;
    }
    const queue = new Set(ids.slice(0, MAX_PULL_IDS));
    this.pulling.set(peer, queue);
    try {
      while (queue.size > 0 && !this.stopped) {
        const batch = [...queue].slice(0, MAX_RECORD_IDS);
        for (const id of batch) queue.delete(id);
        const held = await this.components.store.get(batch);
        const lacking = batch.filter((_, k) => !held[k]);
        if (lacking.length > 0) await this.fetchRecords(peer, lacking, `sync:${peer}`);
      }
    } catch (err) {
      if (!this.stopped) console.warn(`fetching records from ${peer} failed: ${(err as Error).message}`);
    } finally {
      this.pulling.delete(peer);
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
    const chain = snapshot.chain.filter((l) => l.epoch <= state.epoch);
    const votes = [...(base?.votes ?? []), ...rows.filter((r) => r.kind === 'checkpoint').map((r) => r.record)];
    const prefixEnd = voterlessPrefix(chain) * epochBlocks(book.network);
    const prefix = [...(base?.prefix ?? []), ...rows.filter((r) => r.block < prefixEnd).map((r) => r.record)];
    // Thinned (shared/ledger/join.ts): a joiner walks few links however old the network is.
    const links = thinProof(servedLinks(book.network, chain, votes), state.epoch - DENSE_EPOCHS + 1);
    this.offerCache = { stateEpoch: state.epoch, links, prefix };
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
    // Records are handed to the book in groups of up to ACCEPT_BATCH, not page by page: the book admits a group
    // in canonical order (each author's chain in sequence), while pages come in id order, so page by page most
    // records would arrive before their predecessors and wait for the next round.
    let fetched: unknown[] = [];
    const hand = async () => {
      added += await this.components.book.accept(fetched.filter(isOneOf(wanted)), source);
      fetched = [];
    };
    for (let k = 0; k < ids.length; k += MAX_RECORD_IDS) {
      const asked = ids.slice(k, k + MAX_RECORD_IDS);
      const batch: unknown[] = [];
      await this.components.rpc.call(
        peer,
        'sync.records',
        { ids: asked },
        {
          protocol: PROTOCOLS.sync,
          timeoutMs: 20_000,
          onChunk: (c) => {
            // No more records than asked for, whatever the peer sends.
            if (Array.isArray(c)) batch.push(...c.slice(0, asked.length - batch.length));
          },
        },
      );
      fetched.push(...batch);
      if (fetched.length >= ACCEPT_BATCH) await hand();
    }
    if (fetched.length > 0) await hand();
    return added;
  }
}

/** Records fetched before they are handed to the record book together (bounded: a few MiB). */
export const ACCEPT_BATCH = 5000;

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
