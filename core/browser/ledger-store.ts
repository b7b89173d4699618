/**
 * The ledger in IndexedDB (Dexie): one database per identity slot (schema in shared/ledger/db.ts, which the
 * consensus worker opens too), rows of one network per store. Quota errors become sentences.
 */
import Dexie from 'dexie';
import { LedgerDb, type StoredRecordRow } from '../../shared/ledger/db.ts';
import type { JoinedBase } from '../../shared/ledger/join.ts';
import { NodeError } from '../../shared/errors.ts';
import type { LedgerStore } from '../platform.ts';
import { storageErrorSentence } from './slot-db.ts';

export class DexieLedgerStore implements LedgerStore {
  private readonly db: LedgerDb;

  constructor(
    slot: number,
    private readonly networkId: string,
  ) {
    this.db = new LedgerDb(slot);
  }

  count(): Promise<number> {
    return this.db.records.where('network').equals(this.networkId).count();
  }

  async get(ids: readonly string[]): Promise<(StoredRecordRow | undefined)[]> {
    const rows = await this.db.records.bulkGet([...ids]);
    return rows.map((r) => (r && r.network === this.networkId ? r : undefined));
  }

  async put(rows: readonly StoredRecordRow[]): Promise<void> {
    try {
      await this.db.records.bulkPut([...rows]);
    } catch (err) {
      throw new NodeError('storage', storageErrorSentence(err), { cause: err });
    }
  }

  async delete(ids: readonly string[]): Promise<void> {
    const mine = (await this.get(ids)).filter((r): r is StoredRecordRow => !!r).map((r) => r.id);
    await this.db.records.bulkDelete(mine);
  }

  all(): Promise<StoredRecordRow[]> {
    return this.db.records.where('network').equals(this.networkId).toArray();
  }

  async keysFrom(from: number): Promise<{ block: number; id: string }[]> {
    // Index keys only ([network, block, id]): no record is read or cloned.
    const keys = await this.db.records
      .where('[network+block+id]')
      .between([this.networkId, from], [this.networkId, Dexie.maxKey], true, true)
      .keys();
    return keys.map((k) => {
      const [, block, id] = k as unknown as [string, number, string];
      return { block, id };
    });
  }

  byAuthor(author: string): Promise<StoredRecordRow[]> {
    return this.db.records.where('[network+author]').equals([this.networkId, author]).toArray();
  }

  recent(limit: number): Promise<StoredRecordRow[]> {
    return this.db.records
      .where('[network+receivedAt]')
      .between([this.networkId, Dexie.minKey], [this.networkId, Dexie.maxKey])
      .reverse()
      .limit(limit)
      .toArray();
  }

  async base(): Promise<JoinedBase | null> {
    const row = await this.db.bases.get(this.networkId);
    if (!row) return null;
    const base: JoinedBase & { network?: string } = { ...row };
    delete base.network;
    return base;
  }

  async setBase(base: JoinedBase, dropBelow: number): Promise<void> {
    try {
      await this.db.transaction('rw', this.db.bases, this.db.records, async () => {
        await this.db.bases.put({ ...base, network: this.networkId });
        await this.db.records
          .where('[network+block]')
          .between([this.networkId, Dexie.minKey], [this.networkId, dropBelow])
          .delete();
      });
    } catch (err) {
      throw new NodeError('storage', storageErrorSentence(err), { cause: err });
    }
  }
}
