/**
 * The ledger's IndexedDB schema (Dexie), one database per identity slot, shared by the page (which stores what
 * arrives and shows it) and the consensus worker (which replays it). Declaring the schema does no I/O; opening
 * the database is up to them.
 */
import Dexie, { type Table } from 'dexie';
import type { ClosedEpoch } from './replay.ts';
import type { JoinedBase } from './join.ts';
import type { LedgerRecord } from './records.ts';

export interface StoredRecordRow {
  id: string;
  network: string;
  block: number;
  author: string;
  kind: LedgerRecord['kind'];
  record: LedgerRecord;
  /** Who gave it to us: 'self', 'gossip:<peer>' or 'sync:<peer>'. */
  source: string;
  receivedAt: number;
}

export interface EpochRow extends ClosedEpoch {
  network: string;
}

/** The checkpoint a node joined from, one per network. */
export interface BaseRow extends JoinedBase {
  network: string;
}

export class LedgerDb extends Dexie {
  records!: Table<StoredRecordRow, string>;
  epochs!: Table<EpochRow, [string, number, number]>;
  bases!: Table<BaseRow, string>;

  constructor(slot: number) {
    super(`webtensor-ledger-slot-${slot}`);
    this.version(1).stores({
      records: 'id, network, [network+block], [network+author]',
      epochs: '[network+netuid+epoch], network',
    });
    // v2: arrival order per network, for the newest-records view without sorting every row.
    this.version(2).stores({ records: 'id, network, [network+block], [network+author], [network+receivedAt]' });
    // v3: the checkpoint a node joined from (docs/ledger.md, "Joining from a checkpoint").
    this.version(3).stores({ bases: 'network' });
    // v4: records in (block, id) order per network, for sync's index (core/services/sync-index.ts).
    this.version(4).stores({
      records: 'id, network, [network+block], [network+author], [network+receivedAt], [network+block+id]',
    });
  }
}
