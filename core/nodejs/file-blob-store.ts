/**
 * Blobs on disk for Node processes: `<data>/blobs/<sha256>`, partial downloads in `<data>/blobs/partial/<sha256>`.
 * A blob is only ever whole under its name: `put` writes a temporary file (`tmp/`), fsyncs it and renames it into
 * place; a partial download becomes a blob by a rename, and only after its bytes hashed to its name. Temporary files
 * of a put that never finished are removed at the next start. Only names of 64 lowercase hex characters are ever
 * turned into paths.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { NodeError } from '../../shared/errors.ts';
import { KeyedLock } from '../chunked-blob-store.ts';
import { BLOB_HASH, checkBlobHash, type BlobInfo, type BlobStore } from '../platform.ts';

/** The default quota of stored plus partial blobs in a Node process. */
export const NODE_BLOB_QUOTA = 256 * 1024 * 1024;

const missing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

function storageError(what: string, err: unknown): NodeError {
  return new NodeError('storage', `could not ${what}: ${(err as Error).message}`, { cause: err });
}

export class FileBlobStore implements BlobStore {
  private readonly partialDir: string;
  private readonly tmpDir: string;
  private ready: Promise<void> | null = null;
  private readonly lock = new KeyedLock();

  constructor(
    /** The blobs' folder, `<data>/blobs`; created on first use. */
    readonly dir: string,
    readonly quotaBytes = NODE_BLOB_QUOTA,
  ) {
    this.partialDir = join(dir, 'partial');
    this.tmpDir = join(dir, 'tmp');
  }

  async put(bytes: Uint8Array): Promise<string> {
    await this.prepare();
    const hash = createHash('sha256').update(bytes).digest('hex');
    await this.lock.run(hash, () => this.write(hash, bytes));
    return hash;
  }

  async has(hash: string): Promise<boolean> {
    return (await this.size(hash)) !== null;
  }

  async size(hash: string): Promise<number | null> {
    checkBlobHash(hash);
    await this.prepare();
    return this.sizeOf(this.blobPath(hash));
  }

  async read(hash: string, offset: number, length: number): Promise<Uint8Array> {
    checkBlobHash(hash);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0)
      throw new NodeError(
        'bad-input',
        `a read needs a whole offset and length of at least 0; got ${offset}, ${length}`,
      );
    await this.prepare();
    const handle = await open(this.blobPath(hash), 'r').catch((err: unknown) => {
      if (missing(err)) throw new NodeError('bad-input', `no blob ${hash} is stored here`);
      throw storageError(`open blob ${hash}`, err);
    });
    try {
      const { size } = await handle.stat();
      if (offset > size)
        throw new NodeError('bad-input', `offset ${offset} is past the end of blob ${hash} (${size} bytes)`);
      const out = new Uint8Array(Math.min(length, size - offset));
      let filled = 0;
      while (filled < out.length) {
        const { bytesRead } = await handle.read(out, filled, out.length - filled, offset + filled);
        if (bytesRead === 0) throw new NodeError('storage', `blob ${hash} ended early while being read`);
        filled += bytesRead;
      }
      return out;
    } finally {
      await handle.close();
    }
  }

  async delete(hash: string): Promise<void> {
    checkBlobHash(hash);
    await this.prepare();
    await this.lock.run(hash, () => rm(this.blobPath(hash), { force: true }));
  }

  list(): Promise<BlobInfo[]> {
    return this.listIn(this.dir);
  }

  async usage(): Promise<{ stored: number; partial: number }> {
    const sum = (infos: BlobInfo[]) => infos.reduce((n, b) => n + b.size, 0);
    return { stored: sum(await this.list()), partial: sum(await this.listPartials()) };
  }

  async partialSize(hash: string): Promise<number> {
    checkBlobHash(hash);
    await this.prepare();
    return (await this.sizeOf(this.partialPath(hash))) ?? 0;
  }

  async appendPartial(hash: string, bytes: Uint8Array): Promise<void> {
    checkBlobHash(hash);
    if (bytes.length === 0) return;
    await this.prepare();
    await this.lock.run(hash, async () => {
      if ((await this.sizeOf(this.blobPath(hash))) !== null)
        throw new NodeError('bad-input', `blob ${hash} is already stored; nothing to append`);
      await appendFile(this.partialPath(hash), bytes, { mode: 0o600 }).catch((err: unknown) => {
        throw storageError(`append to the partial download of ${hash}`, err);
      });
    });
  }

  async completePartial(hash: string): Promise<string> {
    checkBlobHash(hash);
    await this.prepare();
    return this.lock.run(hash, async () => {
      const partial = this.partialPath(hash);
      if ((await this.sizeOf(this.blobPath(hash))) !== null) {
        await rm(partial, { force: true });
        return hash;
      }
      const held = (await this.sizeOf(partial)) !== null;
      const hasher = createHash('sha256');
      if (held) for await (const piece of createReadStream(partial)) hasher.update(piece as Buffer);
      const actual = hasher.digest('hex');
      if (actual !== hash) await rm(partial, { force: true });
      else if (held) await rename(partial, this.blobPath(hash));
      else await this.write(hash, new Uint8Array(0)); // the empty blob: nothing to download
      return actual;
    });
  }

  async deletePartial(hash: string): Promise<void> {
    checkBlobHash(hash);
    await this.prepare();
    await this.lock.run(hash, () => rm(this.partialPath(hash), { force: true }));
  }

  listPartials(): Promise<BlobInfo[]> {
    return this.listIn(this.partialDir);
  }

  /** Write the blob `hash` (the sha256 of `bytes`) whole, unless it is held; under the hash's lock. */
  private async write(hash: string, bytes: Uint8Array): Promise<void> {
    if ((await this.sizeOf(this.blobPath(hash))) !== null) return;
    const temp = join(this.tmpDir, `${hash}.${randomBytes(4).toString('hex')}`);
    try {
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.blobPath(hash));
    } catch (err) {
      throw storageError(`write blob ${hash}`, err);
    } finally {
      await rm(temp, { force: true });
    }
  }

  private blobPath(hash: string): string {
    return join(this.dir, hash);
  }

  private partialPath(hash: string): string {
    return join(this.partialDir, hash);
  }

  /** A file's size, or null when there is none. */
  private async sizeOf(path: string): Promise<number | null> {
    try {
      const info = await stat(path);
      return info.isFile() ? info.size : null;
    } catch (err) {
      if (missing(err)) return null;
      throw storageError(`read ${path}`, err);
    }
  }

  private async listIn(dir: string): Promise<BlobInfo[]> {
    await this.prepare();
    const infos: BlobInfo[] = [];
    for (const name of await readdir(dir)) {
      if (!BLOB_HASH.test(name)) continue;
      const size = await this.sizeOf(join(dir, name));
      if (size !== null) infos.push({ hash: name, size });
    }
    return infos;
  }

  /** Create the folders and remove what an unfinished put left, once. */
  private prepare(): Promise<void> {
    this.ready ??= (async () => {
      try {
        await mkdir(this.partialDir, { recursive: true, mode: 0o700 });
        await mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
        for (const name of await readdir(this.tmpDir)) await rm(join(this.tmpDir, name), { force: true });
      } catch (err) {
        this.ready = null;
        throw storageError(`prepare the blob folder ${this.dir}`, err);
      }
    })();
    return this.ready;
  }
}
