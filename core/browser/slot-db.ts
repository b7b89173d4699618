/**
 * One Dexie database per identity slot, holding the node's key (the ledger has its own database, declared in
 * shared/ledger/db.ts because the consensus worker reads it too). Storage errors become sentences that say what
 * to do.
 */
import Dexie, { type Table } from 'dexie';

export interface KeyRecord {
  id: 'node';
  /** libp2p private key, protobuf-encoded. */
  bytes: Uint8Array;
  createdAt: number;
}

export class SlotDb extends Dexie {
  keys!: Table<KeyRecord, string>;

  constructor(slot: number) {
    super(`webtensor-slot-${slot}`);
    this.version(1).stores({ keys: 'id' });
  }
}

/** Turn a storage failure into something a person can act on. */
export function storageErrorSentence(err: unknown): string {
  const name = (err as { name?: string }).name ?? '';
  if (name === 'QuotaExceededError' || /quota/i.test(String((err as Error).message)))
    return 'This browser is out of storage for this site. Free some space (or clear old site data) and reload.';
  if (name === 'InvalidStateError' || name === 'SecurityError')
    return 'This browser does not allow this site to store data (private mode?). Open the page in a normal window.';
  return `Could not use the browser's storage: ${(err as Error).message ?? String(err)}`;
}
