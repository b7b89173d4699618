/**
 * A Node process's identity: an Ed25519 key in `<data dir>/node-key.pb`, owner-only, the same on every start.
 * The key file is only ever whole: a key is written to a temporary file and fsynced, then moved into place and
 * the folder fsynced, so a process killed at any moment (or a power cut) leaves the old key or the new one.
 */
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { NodeError } from '../../shared/errors.ts';
import { decodeKey, encodeKey } from '../key-file.ts';
import type { Identity } from '../platform.ts';

export class KeyFileIdentity implements Identity {
  readonly slot = null;
  readonly file: string;

  constructor(readonly dataDir: string) {
    this.file = join(dataDir, 'node-key.pb');
  }

  async loadOrCreateKey(): Promise<PrivateKey> {
    const held = await this.read();
    if (held) return held;
    const key = await generateKeyPair('Ed25519');
    // Another process may have created the key meanwhile; the first one written is the identity.
    if (await this.write(key, 'create')) return key;
    return (await this.read())!;
  }

  async saveKey(key: PrivateKey): Promise<void> {
    await this.write(key, 'replace');
  }

  /** The key in the file, or null if there is no file. A file that holds no key is refused, never replaced. */
  private async read(): Promise<PrivateKey | null> {
    const info = await stat(this.file).catch(() => null);
    if (!info) return null;
    if (info.mode & 0o077) await chmod(this.file, 0o600); // tighten a key someone left readable
    try {
      return decodeKey(await readFile(this.file));
    } catch (err) {
      throw new NodeError('identity', `${this.file}: ${(err as Error).message} Move it away to create a new identity.`);
    }
  }

  /**
   * Write `key` durably. 'create' puts it in place only if there is no key file yet (link refuses an existing
   * name, where rename would replace it) and says whether it did; 'replace' always does.
   */
  private async write(key: PrivateKey, how: 'create' | 'replace'): Promise<boolean> {
    await mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    const temp = join(this.dataDir, `.node-key.pb.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(encodeKey(key));
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (how === 'replace') await rename(temp, this.file);
      else {
        try {
          await link(temp, this.file);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
          throw err;
        }
      }
    } finally {
      await rm(temp, { force: true }); // gone already after a rename
    }
    await syncFolder(this.dataDir);
    return true;
  }
}

/** Make a rename or link in `dir` durable: the new name is in the folder, not only in the file system's cache. */
async function syncFolder(dir: string): Promise<void> {
  if (process.platform === 'win32') return; // Windows cannot open a folder to flush it
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
