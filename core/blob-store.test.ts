/**
 * The BlobStore contract, run against the chunked store over maps (the tab's IndexedDB store is the same logic over
 * Dexie tables: core/browser/blob-store.ts) and the Node store on a temporary folder; then what only each promises:
 * pieces of at most 256 KiB, files named by their hash, a put that is whole or absent, and leftovers of an unfinished
 * put removed at the next start.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NodeError } from '../shared/errors.ts';
import { MemoryBlobStore, PIECE_BYTES } from './chunked-blob-store.ts';
import { FileBlobStore } from './nodejs/file-blob-store.ts';
import type { BlobStore } from './platform.ts';

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
/** `n` bytes that differ from offset to offset (and from seed to seed). */
function bytesOf(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let k = 0; k < n; k++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    out[k] = x & 0xff;
  }
  return out;
}
/** The same bytes (compared by hash: a deep comparison of large arrays is slow). */
const expectSame = (a: Uint8Array, b: Uint8Array) => expect([a.length, sha(a)]).toEqual([b.length, sha(b)]);
const tempDir = () => mkdtempSync(join(tmpdir(), 'blobs-'));

const stores: [string, () => BlobStore][] = [
  ['chunked (memory)', () => new MemoryBlobStore()],
  ['files', () => new FileBlobStore(join(tempDir(), 'blobs'))],
];

describe.each(stores)('BlobStore contract: %s', (_name, make) => {
  it('puts bytes under their sha256, reads any range back, lists and deletes them', async () => {
    const store = make();
    const bytes = bytesOf(700_000);
    const hash = await store.put(bytes);
    expect(hash).toBe(sha(bytes));
    expect(await store.has(hash)).toBe(true);
    expect(await store.size(hash)).toBe(700_000);
    expectSame(await store.read(hash, 0, 700_000), bytes);
    // Ranges across piece boundaries, at the end, past the end, and empty.
    expectSame(await store.read(hash, PIECE_BYTES - 10, 20), bytes.subarray(PIECE_BYTES - 10, PIECE_BYTES + 10));
    expectSame(await store.read(hash, 699_990, 100), bytes.subarray(699_990));
    expect((await store.read(hash, 700_000, 10)).length).toBe(0);
    expect((await store.read(hash, 5, 0)).length).toBe(0);
    expect(await store.put(bytes)).toBe(hash); // again: kept as it is
    const other = await store.put(bytesOf(10, 2));
    expect((await store.list()).sort((a, b) => a.hash.localeCompare(b.hash))).toEqual(
      [
        { hash, size: 700_000 },
        { hash: other, size: 10 },
      ].sort((a, b) => a.hash.localeCompare(b.hash)),
    );
    expect(await store.usage()).toEqual({ stored: 700_010, partial: 0 });
    await store.delete(hash);
    await store.delete(hash); // nothing to delete: fine
    expect(await store.has(hash)).toBe(false);
    expect(await store.size(hash)).toBeNull();
    expect(await store.list()).toEqual([{ hash: other, size: 10 }]);
  });

  it('holds the empty blob', async () => {
    const store = make();
    const hash = await store.put(new Uint8Array(0));
    expect(hash).toBe(sha(new Uint8Array(0)));
    expect(await store.size(hash)).toBe(0);
    expect((await store.read(hash, 0, 10)).length).toBe(0);
  });

  it('refuses bad names, unknown blobs and offsets past the end, saying which', async () => {
    const store = make();
    const hash = await store.put(bytesOf(100));
    for (const bad of ['../../etc/passwd', hash.toUpperCase(), hash.slice(1), `${hash}0`, '', 'partial'])
      await expect(store.read(bad, 0, 1)).rejects.toThrow(/64 lowercase hex/);
    await expect(store.has('x')).rejects.toBeInstanceOf(NodeError);
    await expect(store.appendPartial('../x', bytesOf(1))).rejects.toThrow(/64 lowercase hex/);
    await expect(store.read('a'.repeat(64), 0, 1)).rejects.toThrow(`no blob ${'a'.repeat(64)} is stored here`);
    await expect(store.read(hash, 101, 1)).rejects.toThrow(`offset 101 is past the end of blob ${hash} (100 bytes)`);
    await expect(store.read(hash, -1, 1)).rejects.toThrow(/whole offset/);
  });

  it('keeps a partial download apart, and makes it the blob only if its bytes hash to its name', async () => {
    const store = make();
    const bytes = bytesOf(600_000, 3);
    const hash = sha(bytes);
    expect(await store.partialSize(hash)).toBe(0);
    await store.appendPartial(hash, bytes.subarray(0, 100_000));
    await store.appendPartial(hash, bytes.subarray(100_000, 400_000));
    expect(await store.partialSize(hash)).toBe(400_000);
    expect(await store.has(hash)).toBe(false);
    expect(await store.listPartials()).toEqual([{ hash, size: 400_000 }]);
    expect(await store.usage()).toEqual({ stored: 0, partial: 400_000 });
    await store.appendPartial(hash, bytes.subarray(400_000));
    expect(await store.completePartial(hash)).toBe(hash);
    expectSame(await store.read(hash, 0, 600_000), bytes);
    expect(await store.partialSize(hash)).toBe(0);
    expect(await store.listPartials()).toEqual([]);
    expect(await store.usage()).toEqual({ stored: 600_000, partial: 0 });
    await expect(store.appendPartial(hash, bytesOf(1))).rejects.toThrow(/already stored/);

    // Bytes that are not the blob's: deleted, and the hash they do have is said.
    const wanted = sha(bytesOf(50, 4));
    await store.appendPartial(wanted, bytesOf(50, 5));
    expect(await store.completePartial(wanted)).toBe(sha(bytesOf(50, 5)));
    expect(await store.has(wanted)).toBe(false);
    expect(await store.partialSize(wanted)).toBe(0);
    expect(await store.listPartials()).toEqual([]);
  });

  it('completes the empty blob from no partial at all, and deletes partials', async () => {
    const store = make();
    const empty = sha(new Uint8Array(0));
    expect(await store.completePartial(empty)).toBe(empty);
    expect(await store.size(empty)).toBe(0);
    const h = sha(bytesOf(10, 6));
    await store.appendPartial(h, bytesOf(5, 6));
    await store.deletePartial(h);
    await store.deletePartial(h);
    expect(await store.partialSize(h)).toBe(0);
    expect(await store.usage()).toEqual({ stored: 0, partial: 0 });
  });

  it('serialises appends to one partial download', async () => {
    const store = make();
    const bytes = bytesOf(300_000, 7);
    const hash = sha(bytes);
    await Promise.all([0, 1, 2].map((k) => store.appendPartial(hash, bytes.subarray(k * 100_000, (k + 1) * 100_000))));
    expect(await store.completePartial(hash)).toBe(hash);
  });
});

describe('the chunked store', () => {
  it('cuts blobs and appends into pieces of at most 256 KiB', async () => {
    const store = new MemoryBlobStore();
    const hash = await store.put(bytesOf(3 * PIECE_BYTES + 5));
    expect(store.pieces.pieceSizes(hash)).toEqual([PIECE_BYTES, PIECE_BYTES, PIECE_BYTES, 5]);
    const big = bytesOf(PIECE_BYTES + 1, 8);
    const h = sha(big);
    await store.appendPartial(h, big);
    expect(store.pieces.pieceSizes(h)).toEqual([PIECE_BYTES, 1]);
  });

  it('refuses to read a blob whose pieces have a gap', async () => {
    const store = new MemoryBlobStore();
    const hash = await store.put(bytesOf(2 * PIECE_BYTES));
    // Lose the second row, as a broken storage might.
    await store.pieces.write({ hash, state: 'blob', size: 3 * PIECE_BYTES }, []);
    await expect(store.read(hash, 0, 3 * PIECE_BYTES)).rejects.toThrow(/gap at byte 524288/);
  });

  it('has a quota of 64 MiB unless told otherwise', () => {
    expect(new MemoryBlobStore().quotaBytes).toBe(64 * 1024 * 1024);
    expect(new MemoryBlobStore(5).quotaBytes).toBe(5);
  });
});

describe('the Node store', () => {
  it('keeps each blob as a file named by its hash, partials apart, and outlives a restart', async () => {
    const dir = join(tempDir(), 'blobs');
    const store = new FileBlobStore(dir);
    expect(store.quotaBytes).toBe(256 * 1024 * 1024);
    const bytes = bytesOf(1000);
    const hash = await store.put(bytes);
    expect(readFileSync(join(dir, hash))).toEqual(Buffer.from(bytes));
    const partial = sha(bytesOf(20, 9));
    await store.appendPartial(partial, bytesOf(10, 9));
    expect(readFileSync(join(dir, 'partial', partial)).length).toBe(10);
    const again = new FileBlobStore(dir);
    expect(await again.read(hash, 0, 1000)).toEqual(bytes);
    expect(await again.partialSize(partial)).toBe(10);
  });

  it('removes the temporary files of a put that never finished, and lists only blobs', async () => {
    const dir = join(tempDir(), 'blobs');
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    writeFileSync(join(dir, 'tmp', `${'b'.repeat(64)}.1234`), 'half a blob');
    writeFileSync(join(dir, 'notes.txt'), 'not a blob');
    const store = new FileBlobStore(dir);
    expect(await store.list()).toEqual([]);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    expect(await store.has('b'.repeat(64))).toBe(false);
  });

  it('creates nothing on disk until used', () => {
    const dir = join(tempDir(), 'blobs');
    new FileBlobStore(dir);
    expect(existsSync(dir)).toBe(false);
  });
});
