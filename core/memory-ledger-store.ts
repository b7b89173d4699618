/**
 * A ledger store in memory: for Node processes that keep no history of their own (a client, a test node).
 * It loses everything when the process ends; durable stores implement the same interface.
 */
import type { StoredRecordRow } from '../shared/ledger/db.ts';
import type { JoinedBase } from '../shared/ledger/join.ts';
import type { LedgerStore } from './platform.ts';

export class MemoryLedgerStore implements LedgerStore {
  private readonly rows = new Map<string, StoredRecordRow>();
  private joined: JoinedBase | null = null;

  async count(): Promise<number> {
    return this.rows.size;
  }

  async get(ids: readonly string[]): Promise<(StoredRecordRow | undefined)[]> {
    return ids.map((id) => this.rows.get(id));
  }

  async put(rows: readonly StoredRecordRow[]): Promise<void> {
    for (const row of rows) if (!this.rows.has(row.id)) this.rows.set(row.id, row);
  }

  async delete(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.rows.delete(id);
  }

  async all(): Promise<StoredRecordRow[]> {
    return [...this.rows.values()];
  }

  async keysFrom(from: number): Promise<{ block: number; id: string }[]> {
    return [...this.rows.values()]
      .filter((r) => r.block >= from)
      .map((r) => ({ block: r.block, id: r.id }))
      .sort((a, b) => a.block - b.block || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async byAuthor(author: string): Promise<StoredRecordRow[]> {
    return [...this.rows.values()].filter((r) => r.author === author);
  }

  async recent(limit: number): Promise<StoredRecordRow[]> {
    // Map order is insertion order, i.e. arrival.
    return [...this.rows.values()].slice(-limit).reverse();
  }

  async base(): Promise<JoinedBase | null> {
    return this.joined;
  }

  async setBase(base: JoinedBase, dropBelow: number): Promise<void> {
    this.joined = base;
    for (const [id, row] of this.rows) if (row.block < dropBelow) this.rows.delete(id);
  }
}
