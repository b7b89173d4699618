/**
 * The record book: every valid record of the network this node holds. Records from peers (gossip, sync) and
 * from this node are checked (`checkRecord`: shape, network, signature, clock, proof of work) before they are
 * stored; a peer's refused record counts against it. Stores in batches, so a sync of thousands of records does
 * not write (or re-render a page) once per record. This node's own records get the next sequence number.
 */
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { blockAt, type NetworkConfig } from '../../shared/ledger/config.ts';
import type { StoredRecordRow } from '../../shared/ledger/db.ts';
import { UNCERTAIN_REFUSALS, type Admission } from '../../shared/ledger/admission.ts';
import { arrivalContext } from '../../shared/ledger/finality.ts';
import { canonicalOrder } from '../../shared/ledger/replay.ts';
import { stateFromText } from '../../shared/ledger/state-text.ts';
import {
  checkRecord,
  RecordRefused,
  signRecord,
  type Body,
  type LedgerRecord,
  type RecordKind,
} from '../../shared/ledger/records.ts';
import { NodeError } from '../../shared/errors.ts';
import type { Clock, LedgerStore } from '../platform.ts';
import { Store, type ReadableStore } from '../store.ts';

export interface RecordBookState {
  /** Records held for the network. */
  records: number;
  /** Records refused on arrival. */
  refused: number;
  /** The last refusal: how the record came (gossip, sync, ...), its code and the sentence; null before any. */
  lastRefused: { via: string; code: string; message: string } | null;
  /** The last storage failure as a sentence, or null. */
  error: string | null;
}

export interface RecordBookComponents {
  store: LedgerStore;
  key: PrivateKey;
  network: NetworkConfig;
  clock: Clock;
  /** The last final epoch as this node knows it (nothing in it or before may change). */
  lastFinal: ReadableStore<number>;
  /** State checks for peers' records (funded, registered, permitted, within quota) before they are stored. */
  admission?: Pick<Admission, 'admit' | 'forgetIds'>;
  countRefusal(peer: string): void;
}

/** What became of one record handed to the book: stored now, already held, or refused (and why). */
export type Outcome = { stored: true } | { stored: false; held: true } | { stored: false; refused: RecordRefused };

/**
 * Where a record came from: ourselves, a bulk import, a peer by gossip or sync, or the record set of a final
 * checkpoint this node adopts (`adopt:<peer>`, the only way in for a record of a final epoch).
 */
export type RecordSource = 'self' | 'import' | `gossip:${string}` | `sync:${string}` | `adopt:${string}`;

type Listener = (records: LedgerRecord[]) => void;

export class RecordBook {
  readonly state = new Store<RecordBookState>({ records: 0, refused: 0, lastRefused: null, error: null });
  /** The newest records by arrival (the ledger explorer), refreshed after each stored batch. */
  readonly recent = new Store<readonly StoredRecordRow[]>([]);
  readonly self: string;
  private nextSeq = 1;
  private lastBlock = 0;
  private readonly storedListeners = new Set<Listener>();
  private readonly publishedListeners = new Set<Listener>();
  private readonly droppedListeners = new Set<(ids: readonly string[]) => void>();
  private tail: Promise<unknown> = Promise.resolve();
  private signing: Promise<unknown> = Promise.resolve();

  constructor(private readonly components: RecordBookComponents) {
    this.self = peerIdFromPrivateKey(components.key).toString();
  }

  async start(): Promise<void> {
    await this.reloadHead();
  }

  get network(): NetworkConfig {
    return this.components.network;
  }

  get block(): number {
    return blockAt(this.components.network, this.components.clock.now());
  }

  /** Called with every batch of newly stored records. */
  onStored(listener: Listener): () => void {
    this.storedListeners.add(listener);
    return () => this.storedListeners.delete(listener);
  }

  /** Called with every record this node signed and stored (gossip publishes them). */
  onPublished(listener: Listener): () => void {
    this.publishedListeners.add(listener);
    return () => this.publishedListeners.delete(listener);
  }

  /** Called with the ids of records forgotten because a final checkpoint this node adopted does not hold them. */
  onDropped(listener: (ids: readonly string[]) => void): () => void {
    this.droppedListeners.add(listener);
    return () => this.droppedListeners.delete(listener);
  }

  /**
   * Check records and store the new ones in one batch. Returns how many were new. Our own records throw their
   * refusal; a peer's count against it. By gossip a record must be within the gossip window of this node's
   * clock; by any way but adoption it must not be in a final epoch (`shared/ledger/finality.ts`).
   */
  accept(raws: unknown[], source: RecordSource): Promise<number> {
    return this.receive(raws, source).then((outcomes) => outcomes.filter((o) => o.stored).length);
  }

  /** As `accept`, with what became of each record (the gossip validator's verdict follows from it). */
  receive(raws: unknown[], source: RecordSource): Promise<Outcome[]> {
    // One batch at a time: a record arriving by gossip and by sync at once must be new only once.
    const run = this.tail.then(() => this.acceptNow(raws, source));
    this.tail = run.catch(() => {});
    return run;
  }

  private async acceptNow(raws: unknown[], source: RecordSource): Promise<Outcome[]> {
    const { network, store, clock, lastFinal } = this.components;
    const via = source.startsWith('gossip:') ? 'gossip' : source === 'self' ? 'self' : 'sync';
    const at = source.startsWith('adopt:')
      ? { nowBlock: this.block, minBlock: 0 }
      : arrivalContext(network, this.block, lastFinal.get(), via);
    const outcomes: Outcome[] = raws.map(() => ({ stored: false, held: true }));
    const checked: (StoredRecordRow & { at: number })[] = [];
    let refused = 0;
    let lastRefused: RecordBookState['lastRefused'] = null;
    const refuse = (k: number, err: unknown) => {
      if (!(err instanceof RecordRefused) || source === 'self') throw err;
      refused++;
      lastRefused = { via: source.split(':')[0]!, code: err.code, message: err.message };
      outcomes[k] = { stored: false, refused: err };
      // A peer that syncs us a record from an epoch that became final meanwhile, or one whose funding or
      // predecessor this node has not seen yet, did nothing wrong.
      const peer = source.split(':')[1];
      const blameless = source.startsWith('sync:') && (err.code === 'final' || UNCERTAIN_REFUSALS.has(err.code));
      if (peer && !blameless) this.components.countRefusal(peer);
    };
    for (const [k, raw] of raws.entries()) {
      try {
        const { record, id } = await checkRecord(raw, network, at);
        const row = { id, network: record.network, block: record.block, author: record.author, kind: record.kind };
        checked.push({ ...row, record, source, receivedAt: clock.now(), at: k });
      } catch (err) {
        refuse(k, err);
      }
    }
    const held = await store.get(checked.map((r) => r.id));
    const unheld = [...new Map(checked.filter((_, k) => !held[k]).map((r) => [r.id, r])).values()];
    // Records pass admission in canonical order (an author's chain in sequence, a claim before its spend). This
    // node's own records pass it too: it never signs into its chain a record its peers would refuse (a refused
    // record never reaches them, and every later record of its chain would wait on it forever).
    const admitted = source === 'self' || source.startsWith('gossip:') || source.startsWith('sync:');
    const admission = admitted ? this.components.admission : undefined;
    const fresh: StoredRecordRow[] = [];
    for (const row of admission ? unheld.sort(canonicalOrder) : unheld) {
      try {
        admission?.admit(row.record, row.id);
        const { at: k, ...stored } = row;
        fresh.push(stored);
        outcomes[k] = { stored: true };
      } catch (err) {
        refuse(row.at, err);
      }
    }
    if (fresh.length > 0) {
      try {
        await store.put(fresh);
      } catch (err) {
        const message = err instanceof NodeError ? err.message : `Could not store records: ${(err as Error).message}`;
        this.state.update({ error: message });
        throw err instanceof NodeError ? err : new NodeError('storage', message, { cause: err });
      }
      this.recent.set(await store.recent(50));
      for (const listener of this.storedListeners) listener(fresh.map((r) => r.record));
    }
    if (fresh.length > 0 || refused > 0) {
      const s = this.state.get();
      this.state.update({
        records: s.records + fresh.length,
        refused: s.refused + refused,
        lastRefused: lastRefused ?? s.lastRefused,
      });
    }
    return outcomes;
  }

  /**
   * Sign a record of ours with the next sequence number of our chain, store it and announce it. Records are
   * signed one at a time, so the chain never has two records with one number, nor a later one dated earlier.
   */
  publish<K extends RecordKind>(kind: K, body: Body<K>, block?: number): Promise<LedgerRecord> {
    const run = this.signing.then(async () => {
      // A record bound to an earlier block (a registration's proof of work) must not follow a later one.
      const at = block ?? this.block;
      if (at < this.lastBlock)
        throw new RecordRefused(
          'backdated',
          `block ${at} is before block ${this.lastBlock} of this node's last record`,
        );
      const record = await signRecord(this.components.key, {
        v: 1,
        network: this.components.network.networkId,
        kind,
        author: this.self,
        seq: this.nextSeq,
        block: at,
        body,
      } as never);
      await this.accept([record], 'self');
      this.nextSeq++;
      this.lastBlock = at;
      for (const listener of this.publishedListeners) listener([record]);
      return record;
    });
    this.signing = run.catch(() => {});
    return run;
  }

  /** Every record of this node's own chain the store holds (those below a pruned or joined base are gone). */
  mine(): Promise<StoredRecordRow[]> {
    return this.components.store.byAuthor(this.self);
  }

  /**
   * Read again what depends on the store's contents: where this node's own chain continues (after the last
   * record of ours it holds, or after the head the base it joined from records) and what pages show.
   */
  async reloadHead(): Promise<void> {
    const { store } = this.components;
    const mine = await store.byAuthor(this.self);
    const base = await store.base();
    const head = base ? stateFromText(base.stateText).chains[this.self] : undefined;
    this.nextSeq = Math.max(head?.seq ?? 0, ...mine.map((r) => r.record.seq)) + 1;
    this.lastBlock = Math.max(head?.block ?? 0, ...mine.map((r) => r.record.block));
    // What the pages show: the store may have lost rows below a new base.
    this.state.update({ records: await store.count() });
    this.recent.set(await store.recent(50));
  }

  /**
   * Forget records (those a final checkpoint this node adopts does not hold). If one of ours goes (signed while
   * cut off, say), so do our later ones: no replay can take them after the gap, and our chain continues from the
   * gap with new records. Listeners hear every id forgotten.
   */
  async drop(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const mine = await this.mine();
    const gone = new Set(ids);
    const firstGap = Math.min(...mine.filter((r) => gone.has(r.id)).map((r) => r.record.seq));
    for (const r of mine) if (r.record.seq > firstGap) gone.add(r.id);
    const all = [...gone];
    await this.components.store.delete(all);
    // Admission must not count them either: a new record with one of their numbers is not an equivocation.
    this.components.admission?.forgetIds(all);
    await this.reloadHead();
    for (const listener of this.droppedListeners) listener(all);
    for (const listener of this.storedListeners) listener([]);
  }

  /** Check and store records handed over in bulk (diagnostics and benchmarks); counts what was accepted. */
  async importRecords(raws: unknown[]): Promise<{ accepted: number; refused: number; ms: number }> {
    const start = performance.now();
    let accepted = 0;
    // Large batches: a replay between two batches could close the door on the rest of an old history.
    for (let k = 0; k < raws.length; k += 5000) accepted += await this.accept(raws.slice(k, k + 5000), 'import');
    return { accepted, refused: raws.length - accepted, ms: performance.now() - start };
  }
}
