/**
 * Replay: the ledger state and every closed epoch as a pure function of the config and a set of records.
 * Records are applied in canonical order (block, author, seq, id), so arrival order never matters; each subnet's
 * epoch e closes at block (e+1)*tempo, before any record of that block. Each closed epoch carries its
 * recordsRoot (sha256 over the ids of the records accepted in its blocks) and stateRoot (stateRoot() of the
 * whole ledger right after it closed): the two numbers nodes compare to agree.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import type { NetworkConfig } from './config.ts';
import { closeEpoch, type EpochSummary } from './epoch.ts';
import { RecordRefused, type LedgerRecord, type RefusalCode } from './records.ts';
import { applyRecord, initialState, stateRoot, subnetState, type LedgerState } from './state.ts';

export interface StoredRecord {
  id: string;
  record: LedgerRecord;
}

export interface ClosedEpoch extends EpochSummary {
  recordsRoot: string;
  stateRoot: string;
  /** How many records were accepted in the epoch's blocks. */
  records: number;
}

export interface Replay {
  state: LedgerState;
  epochs: ClosedEpoch[];
  /** Records the replay refused (valid signatures, but not valid against the state), by id. */
  refused: Record<string, { code: RefusalCode; message: string }>;
}

export function canonicalOrder(a: StoredRecord, b: StoredRecord): number {
  const x = a.record;
  const y = b.record;
  if (x.block !== y.block) return x.block - y.block;
  if (x.author !== y.author) return x.author < y.author ? -1 : 1;
  if (x.seq !== y.seq) return x.seq - y.seq;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Replay `records` and close every epoch that ends at or before `closeThrough` (a block). Duplicate ids count
 * once. Pure: the same config, records and block give the same result on every node.
 */
export function replay(config: NetworkConfig, records: readonly StoredRecord[], closeThrough: number): Replay {
  const state = initialState(config);
  const unique = new Map(records.map((r) => [r.id, r]));
  const ordered = [...unique.values()].sort(canonicalOrder);
  const subnets = [...config.subnets].sort((a, b) => a.netuid - b.netuid);
  const epochs: ClosedEpoch[] = [];
  const refused: Replay['refused'] = {};
  const accepted: { block: number; id: string }[] = [];

  // Close, in block order (netuid order within a block), every epoch ending at or before `block`.
  const closeUpTo = (block: number) => {
    for (;;) {
      let next: (typeof subnets)[number] | null = null;
      let nextEnd = Infinity;
      for (const cfg of subnets) {
        const end = (subnetState(state, cfg.netuid).epoch + 1) * cfg.tempo;
        if (end <= block && end < nextEnd) {
          next = cfg;
          nextEnd = end;
        }
      }
      if (!next) return;
      const start = nextEnd - next.tempo;
      const ids = accepted.filter((a) => a.block >= start && a.block < nextEnd).map((a) => a.id);
      const summary = closeEpoch(state, config, next);
      epochs.push({
        ...summary,
        records: ids.length,
        recordsRoot: bytesToHex(sha256(new TextEncoder().encode(ids.join('\n')))),
        stateRoot: stateRoot(state),
      });
    }
  };

  for (const { id, record } of ordered) {
    closeUpTo(record.block);
    try {
      applyRecord(state, config, record);
      accepted.push({ block: record.block, id });
    } catch (err) {
      if (!(err instanceof RecordRefused)) throw err;
      refused[id] = { code: err.code, message: err.message };
    }
  }
  closeUpTo(closeThrough);
  return { state, epochs, refused };
}
