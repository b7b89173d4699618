/**
 * Blobs in IndexedDB (Dexie), one database per identity slot: the chunked store's logic (core/chunked-blob-store.ts)
 * over two tables, entries (hash → blob or partial download, and its size) and pieces (rows of at most 256 KiB keyed
 * by [hash, offset]), so no blob is one giant value and a read touches only the rows it needs. Quota errors become
 * sentences.
 */
import Dexie, { type Table } from 'dexie';
import { NodeError } from '../../shared/errors.ts';
import { ChunkedBlobStore, type BlobEntry, type BlobPiece, type PieceTable } from '../chunked-blob-store.ts';
import { storageErrorSentence } from './slot-db.ts';

/** The default quota of stored plus partial blobs in a tab. */
export const TAB_BLOB_QUOTA = 64 * 1024 * 1024;

class BlobDb extends Dexie {
  entries!: Table<BlobEntry, string>;
  pieces!: Table<BlobPiece, [string, number]>;

  constructor(slot: number) {
    super(`webtensor-blobs-slot-${slot}`);
    this.version(1).stores({ entries: 'hash', pieces: '[hash+at]' });
  }
}

async function storage<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof NodeError) throw err;
    throw new NodeError('storage', storageErrorSentence(err), { cause: err });
  }
}

class DexiePieceTable implements PieceTable {
  constructor(private readonly db: BlobDb) {}

  entry(hash: string): Promise<BlobEntry | undefined> {
    return storage(() => this.db.entries.get(hash));
  }

  entries(): Promise<BlobEntry[]> {
    return storage(() => this.db.entries.toArray());
  }

  write(entry: BlobEntry, pieces: readonly BlobPiece[]): Promise<void> {
    return storage(() =>
      this.db.transaction('rw', this.db.entries, this.db.pieces, async () => {
        if (pieces.length > 0) await this.db.pieces.bulkPut([...pieces]);
        await this.db.entries.put(entry);
      }),
    );
  }

  remove(hash: string): Promise<void> {
    return storage(() =>
      this.db.transaction('rw', this.db.entries, this.db.pieces, async () => {
        await this.db.pieces.where('[hash+at]').between([hash, Dexie.minKey], [hash, Dexie.maxKey]).delete();
        await this.db.entries.delete(hash);
      }),
    );
  }

  range(hash: string, from: number, to: number): Promise<BlobPiece[]> {
    if (to <= from) return Promise.resolve([]); // (an empty key range would throw)
    return storage(() =>
      this.db.transaction('r', this.db.pieces, async () => {
        // The piece holding `from` starts at or before it; the others start inside (from, to).
        const first = await this.db.pieces
          .where('[hash+at]')
          .between([hash, Dexie.minKey], [hash, from], true, true)
          .last();
        const rest = await this.db.pieces.where('[hash+at]').between([hash, from], [hash, to], false, false).toArray();
        return first && first.at + first.bytes.length > from ? [first, ...rest] : rest;
      }),
    );
  }
}

export class DexieBlobStore extends ChunkedBlobStore {
  constructor(slot: number, quotaBytes = TAB_BLOB_QUOTA) {
    super(new DexiePieceTable(new BlobDb(slot)), quotaBytes);
  }
}
