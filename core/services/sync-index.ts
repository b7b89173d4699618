/**
 * Sync's index of what this node holds: every record's (block, id) in order, with prefix sums for fingerprints
 * (`KeyIndex`, shared/ledger/reconcile.ts). Built once from the store's (block, id) index, then kept current
 * cheaply: a stored batch re-reads only the keys from its earliest block on (gossip brings recent blocks, so that
 * is a short tail), and anything else that changes the store (rows dropped, a joined base) shows as a count that
 * no longer matches, which rebuilds it.
 */
import { KeyIndex } from '../../shared/ledger/reconcile.ts';
import type { LedgerStore } from '../platform.ts';
import type { RecordBook } from './record-book.ts';

export class SyncIndex {
  private index = KeyIndex.of([]);
  /** Re-read keys from this block on before the next use (0: everything; null: current). */
  private dirtyFrom: number | null = 0;
  private refreshing: Promise<KeyIndex> | null = null;
  private readonly stopListening: () => void;

  constructor(
    private readonly store: Pick<LedgerStore, 'keysFrom' | 'count'>,
    book: Partial<Pick<RecordBook, 'onStored'>>,
  ) {
    // A test's record book may be a bare { network }: then only the count check keeps the index current.
    this.stopListening =
      typeof book.onStored === 'function'
        ? book.onStored((records) => {
            // An empty batch: rows were dropped. Otherwise re-read from the earliest block stored.
            const from = records.length === 0 ? 0 : Math.min(...records.map((r) => r.block));
            this.dirtyFrom = this.dirtyFrom === null ? from : Math.min(this.dirtyFrom, from);
          })
        : () => {};
  }

  stop(): void {
    this.stopListening();
  }

  /** The index, brought up to date with the store (one refresh at a time; callers share it). */
  current(): Promise<KeyIndex> {
    this.refreshing ??= this.refresh().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private async refresh(): Promise<KeyIndex> {
    const from = this.dirtyFrom;
    this.dirtyFrom = null;
    if (from !== null) {
      const keys = await this.store.keysFrom(from);
      if (from === 0) this.index = KeyIndex.of(keys);
      else this.index.replaceFrom(from, keys);
    }
    // Rows can also go without a stored batch (a joined base drops history): a count that differs rebuilds. If a
    // batch was stored meanwhile, the next refresh re-reads it and checks again.
    if (this.dirtyFrom === null && (await this.store.count()) !== this.index.size && this.dirtyFrom === null) {
      this.index = KeyIndex.of(await this.store.keysFrom(0));
    }
    return this.index;
  }
}
