/**
 * A blob store over two tables: entries (hash → blob or partial download, and its size) and pieces (rows of at
 * most 256 KiB keyed by hash and offset), so a large blob is never one giant value. The tab's store is this logic
 * over IndexedDB (core/browser/blob-store.ts); `MemoryBlobStore` is the same logic over maps (tests, and nodes that
 * keep nothing). Hashing is incremental, slab by slab, so completing a download never holds it whole.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { NodeError } from '../shared/errors.ts';
import { checkBlobHash, type BlobInfo, type BlobStore } from './platform.ts';

/** The largest piece (row) a blob is cut into. */
export const PIECE_BYTES = 256 * 1024;
/** Bytes read at a time when hashing a partial download. */
const SLAB_BYTES = 4 * 1024 * 1024;

export interface BlobEntry {
  hash: string;
  state: 'blob' | 'partial';
  size: number;
}

export interface BlobPiece {
  hash: string;
  /** Offset of the piece's first byte in the blob. */
  at: number;
  bytes: Uint8Array;
}

/** What the chunked store needs of its storage; each call is one transaction. */
export interface PieceTable {
  entry(hash: string): Promise<BlobEntry | undefined>;
  entries(): Promise<BlobEntry[]>;
  /** Store `pieces` and set the entry, together. */
  write(entry: BlobEntry, pieces: readonly BlobPiece[]): Promise<void>;
  /** Remove the entry and every piece of `hash`, together. */
  remove(hash: string): Promise<void>;
  /** The pieces of `hash` that overlap [from, to), by offset. */
  range(hash: string, from: number, to: number): Promise<BlobPiece[]>;
}

/** Runs the work given for one key one at a time, in order (other keys run alongside). */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(work);
    const tail = result.then(
      () => {},
      () => {},
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0)
    throw new NodeError('bad-input', `a read needs a whole offset and length of at least 0; got ${offset}, ${length}`);
}

/** `bytes` as pieces of `hash` from offset `at` (copies: the caller may reuse its buffer). */
function cut(hash: string, at: number, bytes: Uint8Array): BlobPiece[] {
  const pieces: BlobPiece[] = [];
  for (let k = 0; k < bytes.length; k += PIECE_BYTES)
    pieces.push({ hash, at: at + k, bytes: bytes.slice(k, k + PIECE_BYTES) });
  return pieces;
}

export class ChunkedBlobStore implements BlobStore {
  private readonly lock = new KeyedLock();

  constructor(
    private readonly table: PieceTable,
    readonly quotaBytes: number,
  ) {}

  async put(bytes: Uint8Array): Promise<string> {
    const hash = bytesToHex(sha256(bytes));
    await this.lock.run(hash, async () => {
      if ((await this.table.entry(hash))?.state === 'blob') return;
      await this.table.remove(hash); // a partial download of the same bytes, cut elsewhere
      await this.table.write({ hash, state: 'blob', size: bytes.length }, cut(hash, 0, bytes));
    });
    return hash;
  }

  async has(hash: string): Promise<boolean> {
    return (await this.size(hash)) !== null;
  }

  async size(hash: string): Promise<number | null> {
    checkBlobHash(hash);
    const entry = await this.table.entry(hash);
    return entry?.state === 'blob' ? entry.size : null;
  }

  async read(hash: string, offset: number, length: number): Promise<Uint8Array> {
    checkBlobHash(hash);
    checkRange(offset, length);
    const entry = await this.table.entry(hash);
    if (entry?.state !== 'blob') throw new NodeError('bad-input', `no blob ${hash} is stored here`);
    if (offset > entry.size)
      throw new NodeError('bad-input', `offset ${offset} is past the end of blob ${hash} (${entry.size} bytes)`);
    const end = Math.min(entry.size, offset + length);
    return this.assemble(hash, offset, end);
  }

  async delete(hash: string): Promise<void> {
    checkBlobHash(hash);
    await this.lock.run(hash, async () => {
      if ((await this.table.entry(hash))?.state === 'blob') await this.table.remove(hash);
    });
  }

  async list(): Promise<BlobInfo[]> {
    return this.listState('blob');
  }

  async usage(): Promise<{ stored: number; partial: number }> {
    let stored = 0;
    let partial = 0;
    for (const e of await this.table.entries())
      if (e.state === 'blob') stored += e.size;
      else partial += e.size;
    return { stored, partial };
  }

  async partialSize(hash: string): Promise<number> {
    checkBlobHash(hash);
    const entry = await this.table.entry(hash);
    return entry?.state === 'partial' ? entry.size : 0;
  }

  async appendPartial(hash: string, bytes: Uint8Array): Promise<void> {
    checkBlobHash(hash);
    if (bytes.length === 0) return;
    await this.lock.run(hash, async () => {
      const entry = await this.table.entry(hash);
      if (entry?.state === 'blob')
        throw new NodeError('bad-input', `blob ${hash} is already stored; nothing to append`);
      const at = entry?.size ?? 0;
      await this.table.write({ hash, state: 'partial', size: at + bytes.length }, cut(hash, at, bytes));
    });
  }

  async completePartial(hash: string): Promise<string> {
    checkBlobHash(hash);
    return this.lock.run(hash, async () => {
      const entry = await this.table.entry(hash);
      if (entry?.state === 'blob') return hash;
      const size = entry?.size ?? 0;
      const hasher = sha256.create();
      for (let from = 0; from < size; from += SLAB_BYTES) {
        const slab = await this.assemble(hash, from, Math.min(size, from + SLAB_BYTES)).catch(async (err) => {
          await this.table.remove(hash);
          throw err;
        });
        hasher.update(slab);
      }
      const actual = bytesToHex(hasher.digest());
      if (actual === hash) await this.table.write({ hash, state: 'blob', size }, []);
      else await this.table.remove(hash);
      return actual;
    });
  }

  async deletePartial(hash: string): Promise<void> {
    checkBlobHash(hash);
    await this.lock.run(hash, async () => {
      if ((await this.table.entry(hash))?.state === 'partial') await this.table.remove(hash);
    });
  }

  async listPartials(): Promise<BlobInfo[]> {
    return this.listState('partial');
  }

  private async listState(state: BlobEntry['state']): Promise<BlobInfo[]> {
    return (await this.table.entries()).filter((e) => e.state === state).map(({ hash, size }) => ({ hash, size }));
  }

  /** Bytes [from, to) of `hash` from its pieces; a gap means the store lost a row. */
  private async assemble(hash: string, from: number, to: number): Promise<Uint8Array> {
    const out = new Uint8Array(to - from);
    if (to === from) return out;
    let filled = from;
    for (const piece of await this.table.range(hash, from, to)) {
      const start = Math.max(piece.at, from);
      const end = Math.min(piece.at + piece.bytes.length, to);
      if (end <= start) continue;
      if (start !== filled) break;
      out.set(piece.bytes.subarray(start - piece.at, end - piece.at), start - from);
      filled = end;
    }
    if (filled !== to) throw new NodeError('storage', `the stored pieces of ${hash} have a gap at byte ${filled}`);
    return out;
  }
}

/** Pieces in maps: the memory store's table, and the model the IndexedDB table follows. */
export class MemoryPieceTable implements PieceTable {
  private readonly rows = new Map<string, { entry: BlobEntry; pieces: Map<number, Uint8Array> }>();

  async entry(hash: string): Promise<BlobEntry | undefined> {
    const row = this.rows.get(hash);
    return row ? { ...row.entry } : undefined;
  }

  async entries(): Promise<BlobEntry[]> {
    return [...this.rows.values()].map((r) => ({ ...r.entry }));
  }

  async write(entry: BlobEntry, pieces: readonly BlobPiece[]): Promise<void> {
    const row = this.rows.get(entry.hash) ?? { entry, pieces: new Map<number, Uint8Array>() };
    row.entry = { ...entry };
    for (const p of pieces) row.pieces.set(p.at, p.bytes.slice());
    this.rows.set(entry.hash, row);
  }

  async remove(hash: string): Promise<void> {
    this.rows.delete(hash);
  }

  async range(hash: string, from: number, to: number): Promise<BlobPiece[]> {
    const pieces = this.rows.get(hash)?.pieces ?? new Map<number, Uint8Array>();
    return [...pieces]
      .filter(([at, bytes]) => at < to && at + bytes.length > from)
      .sort(([a], [b]) => a - b)
      .map(([at, bytes]) => ({ hash, at, bytes }));
  }

  /** Pieces held, for tests: how a blob was cut. */
  pieceSizes(hash: string): number[] {
    return [...(this.rows.get(hash)?.pieces ?? new Map<number, Uint8Array>())]
      .sort(([a], [b]) => a - b)
      .map(([, bytes]) => bytes.length);
  }
}

/** Blobs in memory (64 MiB by default): gone when the process ends. */
export class MemoryBlobStore extends ChunkedBlobStore {
  readonly pieces: MemoryPieceTable;

  constructor(quotaBytes = 64 * 1024 * 1024) {
    const table = new MemoryPieceTable();
    super(table, quotaBytes);
    this.pieces = table;
  }
}
