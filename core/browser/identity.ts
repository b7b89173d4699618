/**
 * One node per tab: a tab claims the first free identity slot with the Web Locks API (held until the tab
 * closes), and each slot has its own database and persistent Ed25519 key. Reloading a tab gets the same slot
 * back, hence the same peer id; two tabs of one browser are two nodes.
 */
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { NodeError } from '../../shared/errors.ts';
import type { Identity } from '../platform.ts';
import { SlotDb, storageErrorSentence } from './slot-db.ts';

const MAX_SLOTS = 64;

/** Claim the lowest free slot; the lock is released only when the tab goes away. */
export async function claimSlot(): Promise<number> {
  if (!('locks' in navigator))
    throw new NodeError('identity', 'This browser has no Web Locks API; use a current Chrome, Edge or Firefox.');
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
  throw new NodeError(
    'identity',
    `All ${MAX_SLOTS} identity slots of this browser are in use; close a webtensor tab and reload.`,
  );
}

/** The identity of one slot: its key lives in the slot's IndexedDB database. */
export class SlotIdentity implements Identity {
  private readonly db: SlotDb;

  constructor(readonly slot: number) {
    this.db = new SlotDb(slot);
  }

  async loadOrCreateKey(): Promise<PrivateKey> {
    try {
      const stored = await this.db.keys.get('node');
      if (stored) return privateKeyFromProtobuf(stored.bytes);
      const key = await generateKeyPair('Ed25519');
      await this.db.keys.put({ id: 'node', bytes: privateKeyToProtobuf(key), createdAt: Date.now() });
      return key;
    } catch (err) {
      throw new NodeError('storage', storageErrorSentence(err), { cause: err });
    }
  }

  async saveKey(key: PrivateKey): Promise<void> {
    await this.db.keys.put({ id: 'node', bytes: privateKeyToProtobuf(key), createdAt: Date.now() });
  }
}
