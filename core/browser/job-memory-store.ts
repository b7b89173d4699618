/**
 * What a tab's batch-job services keep across restarts (core/services/job-memory.ts), in IndexedDB (Dexie): one
 * database per identity slot, one table of values keyed by [network, key]. Storage errors become sentences.
 */
import Dexie, { type Table } from 'dexie';
import { NodeError } from '../../shared/errors.ts';
import type { JobMemoryStore } from '../platform.ts';
import { storageErrorSentence } from './slot-db.ts';

interface KeptRow {
  network: string;
  key: string;
  value: string;
  writtenAt: number;
}

class JobMemoryDb extends Dexie {
  kept!: Table<KeptRow, [string, string]>;

  constructor(slot: number) {
    super(`webtensor-jobs-slot-${slot}`);
    this.version(1).stores({ kept: '[network+key], network' });
  }
}

async function storage<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw new NodeError('storage', storageErrorSentence(err), { cause: err });
  }
}

export class DexieJobMemoryStore implements JobMemoryStore {
  private readonly db: JobMemoryDb;

  constructor(
    slot: number,
    private readonly network: string,
  ) {
    this.db = new JobMemoryDb(slot);
  }

  async all(): Promise<{ key: string; value: string }[]> {
    const rows = await storage(() => this.db.kept.where('network').equals(this.network).toArray());
    return rows.map(({ key, value }) => ({ key, value }));
  }

  put(key: string, value: string): Promise<void> {
    return storage(async () => {
      await this.db.kept.put({ network: this.network, key, value, writtenAt: Date.now() });
    });
  }

  delete(keys: readonly string[]): Promise<void> {
    return storage(() => this.db.kept.bulkDelete(keys.map((key): [string, string] => [this.network, key])));
  }
}
