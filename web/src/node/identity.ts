/**
 * One node per tab: a tab claims the first free identity slot with the Web Locks API (held until the tab
 * closes), and each slot has its own database and persistent Ed25519 key. Reloading a tab gets the same slot
 * back, hence the same peer id; two tabs of one browser are two nodes.
 */
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { SlotDb, storageErrorSentence } from './db.ts';

const MAX_SLOTS = 64;

/** Claim the lowest free slot; the lock is released only when the tab goes away. */
export async function claimSlot(): Promise<number> {
  if (!('locks' in navigator))
    throw new Error('This browser has no Web Locks API; use a current Chrome, Edge or Firefox.');
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    const acquired = await new Promise<boolean>((resolve) => {
      void navigator.locks.request(`webtensor-slot-${slot}`, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        // Holding the callback's promise open holds the lock for the life of the tab.
        return lock === null ? undefined : new Promise<never>(() => {});
      });
    });
    if (acquired) return slot;
  }
  throw new Error(`All ${MAX_SLOTS} identity slots of this browser are in use; close a webtensor tab and reload.`);
}

export async function loadOrCreateKey(db: SlotDb): Promise<PrivateKey> {
  try {
    const stored = await db.keys.get('node');
    if (stored) return privateKeyFromProtobuf(stored.bytes);
    const key = await generateKeyPair('Ed25519');
    await db.keys.put({ id: 'node', bytes: privateKeyToProtobuf(key), createdAt: Date.now() });
    return key;
  } catch (err) {
    throw new Error(storageErrorSentence(err), { cause: err });
  }
}

/** The key as a file a person can keep: protobuf bytes. */
export function exportKey(key: PrivateKey): Blob {
  return new Blob([privateKeyToProtobuf(key) as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' });
}

/** Replace this slot's key with an imported one (takes effect on reload). Refuses anything but an Ed25519 key. */
export async function importKey(db: SlotDb, bytes: Uint8Array): Promise<PrivateKey> {
  let key: PrivateKey;
  try {
    key = privateKeyFromProtobuf(bytes);
  } catch {
    throw new Error('That file is not a webtensor key (expected a libp2p private key file exported from this page).');
  }
  if (key.type !== 'Ed25519') throw new Error(`That key is ${key.type}; webtensor identities are Ed25519.`);
  await db.keys.put({ id: 'node', bytes: privateKeyToProtobuf(key), createdAt: Date.now() });
  return key;
}
