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
import { Store } from '../store.ts';

export interface RecordBookState {
  /** Records held for the network. */
  records: number;
  /** Records refused on arrival. */
  refused: number;
  /** The last storage failure as a sentence, or null. */
  error: string | null;
}

export interface RecordBookComponents {
  store: LedgerStore;
  key: PrivateKey;
  network: NetworkConfig;
  clock: Clock;
  countRefusal(peer: string): void;
}

/** Where a record came from: ourselves, a bulk import, or a peer by gossip or sync. */
export type RecordSource = 'self' | 'import' | `gossip:${string}` | `sync:${string}`;

type Listener = (records: LedgerRecord[]) => void;

export class RecordBook {
  readonly state = new Store<RecordBookState>({ records: 0, refused: 0, error: null });
  /** The newest records by arrival (the ledger explorer), refreshed after each stored batch. */
  readonly recent = new Store<readonly StoredRecordRow[]>([]);
  readonly self: string;
  private nextSeq = 1;
  private readonly storedListeners = new Set<Listener>();
  private readonly publishedListeners = new Set<Listener>();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly components: RecordBookComponents) {
    this.self = peerIdFromPrivateKey(components.key).toString();
  }

  async start(): Promise<void> {
    const { store } = this.components;
    this.nextSeq = (await this.lastSeq(this.self)) + 1;
    this.state.update({ records: await store.count() });
    this.recent.set(await store.recent(50));
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

  /** The oldest block a gossiped record may carry: epochs closed beyond the reorg window are final. */
  minGossipBlock(): number {
    const { network } = this.components;
    const tempo = Math.min(...network.subnets.map((s) => s.tempo));
    const closedEpochs = Math.floor((this.block - network.graceBlocks) / tempo);
    return Math.max(0, (closedEpochs - network.reorgEpochs) * tempo);
  }

  /**
   * Check records and store the new ones in one batch. Returns how many were new. Our own records throw their
   * refusal; a peer's count against it. `stale` applies the gossip age limit.
   */
  accept(raws: unknown[], source: RecordSource, stale = false): Promise<number> {
    // One batch at a time: a record arriving by gossip and by sync at once must be new only once.
    const run = this.tail.then(() => this.acceptNow(raws, source, stale));
    this.tail = run.catch(() => {});
    return run;
  }

  private async acceptNow(raws: unknown[], source: RecordSource, stale: boolean): Promise<number> {
    const { network, store, clock } = this.components;
    const at = { nowBlock: this.block, minBlock: stale ? this.minGossipBlock() : 0 };
    const checked: StoredRecordRow[] = [];
    let refused = 0;
    for (const raw of raws) {
      try {
        const { record, id } = await checkRecord(raw, network, at);
        const row = { id, network: record.network, block: record.block, author: record.author, kind: record.kind };
        checked.push({ ...row, record, source, receivedAt: clock.now() });
      } catch (err) {
        if (!(err instanceof RecordRefused) || source === 'self') throw err;
        refused++;
        const peer = source.split(':')[1];
        if (peer) this.components.countRefusal(peer);
      }
    }
    const held = await store.get(checked.map((r) => r.id));
    const fresh = [...new Map(checked.filter((_, k) => !held[k]).map((r) => [r.id, r])).values()];
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
      this.state.update({ records: s.records + fresh.length, refused: s.refused + refused });
    }
    return fresh.length;
  }

  /** Sign a record of ours (or of another key we hold, like the test faucet's), store it and announce it. */
  async publish<K extends RecordKind>(kind: K, body: Body<K>, key = this.components.key): Promise<LedgerRecord> {
    const author = key === this.components.key ? this.self : peerIdFromPrivateKey(key).toString();
    // Other keys (the test faucet) may be used by several nodes at once: a time-based sequence keeps theirs apart.
    const seq =
      author === this.self ? this.nextSeq++ : Math.max((await this.lastSeq(author)) + 1, this.components.clock.now());
    return this.publishSigned(
      await signRecord(key, {
        v: 1,
        network: this.components.network.networkId,
        kind,
        author,
        seq,
        block: this.block,
        body,
      } as never),
    );
  }

  /** Take the next sequence number of ours (for records built elsewhere, like a registration). */
  takeSeq(): number {
    return this.nextSeq++;
  }

  /** Store a record this node signed, then tell the gossip service. Throws RecordRefused if our checks fail. */
  async publishSigned(record: LedgerRecord): Promise<LedgerRecord> {
    await this.accept([record], 'self');
    for (const listener of this.publishedListeners) listener([record]);
    return record;
  }

  /** Check and store records handed over in bulk (diagnostics and benchmarks); counts what was accepted. */
  async importRecords(raws: unknown[]): Promise<{ accepted: number; refused: number; ms: number }> {
    const start = performance.now();
    let accepted = 0;
    for (let k = 0; k < raws.length; k += 500) accepted += await this.accept(raws.slice(k, k + 500), 'import');
    return { accepted, refused: raws.length - accepted, ms: performance.now() - start };
  }

  private async lastSeq(author: string): Promise<number> {
    const rows = await this.components.store.byAuthor(author);
    return Math.max(0, ...rows.map((r) => r.record.seq));
  }
}
