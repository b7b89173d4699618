/** A Node process's identity: an Ed25519 key in `<data dir>/node-key.pb`, owner-only, the same on every start. */
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
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
    const info = await stat(this.file).catch(() => null);
    if (info) {
      if (info.mode & 0o077) await chmod(this.file, 0o600); // tighten a key someone left readable
      try {
        return decodeKey(await readFile(this.file));
      } catch (err) {
        throw new NodeError(
          'identity',
          `${this.file}: ${(err as Error).message} Move it away to create a new identity.`,
        );
      }
    }
    const key = await generateKeyPair('Ed25519');
    await mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    await writeFile(this.file, encodeKey(key), { mode: 0o600, flag: 'wx' });
    return key;
  }

  async saveKey(key: PrivateKey): Promise<void> {
    await mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    await writeFile(this.file, encodeKey(key), { mode: 0o600 });
  }
}
