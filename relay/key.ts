/** The relay's persistent Ed25519 identity: created on first start with owner-only permissions, then reused. */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';

export async function loadOrCreateKey(file: string): Promise<{ key: PrivateKey; created: boolean }> {
  if (existsSync(file)) {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) chmodSync(file, 0o600); // tighten a key someone left readable
    let key: PrivateKey;
    try {
      key = privateKeyFromProtobuf(readFileSync(file));
    } catch (err) {
      throw new Error(
        `the relay key file ${file} is not a libp2p private key (${(err as Error).message}); move it away to create a new identity`,
        { cause: err },
      );
    }
    if (key.type !== 'Ed25519') throw new Error(`the relay key file ${file} holds a ${key.type} key; expected Ed25519`);
    return { key, created: false };
  }
  const key = await generateKeyPair('Ed25519');
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' });
  return { key, created: true };
}
