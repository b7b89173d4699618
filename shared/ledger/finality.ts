/**
 * Finality rules outside the replay itself: what a node may still accept (nothing in a final epoch; by gossip,
 * nothing behind the network's clock by more than the gossip window), which records make up an epoch's
 * checkpoint, and how a node that was outvoted adopts a final checkpoint. docs/ledger.md, "Finality".
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { epochBlocks, type NetworkConfig } from './config.ts';
import type { ArrivalContext } from './records.ts';
import { canonicalOrder, type Replay, type StoredRecord } from './replay.ts';
import { CHAIN_REFUSALS } from './state.ts';

/** The first block after the last final epoch (0 before any epoch is final). */
export function finalThrough(config: NetworkConfig, lastFinal: number): number {
  return (lastFinal + 1) * epochBlocks(config);
}

/**
 * What a record must satisfy on arrival. By gossip: its block is within the gossip window behind this node's
 * clock (and not in a final epoch). By sync: not in a final epoch (sync is how a node catches up on what it
 * missed while the epoch is still open).
 */
export function arrivalContext(
  config: NetworkConfig,
  nowBlock: number,
  lastFinal: number,
  via: 'gossip' | 'sync' | 'self',
): ArrivalContext {
  const final = finalThrough(config, lastFinal);
  if (via === 'self') return { nowBlock, minBlock: final, minBlockReason: 'final' };
  const window = via === 'gossip' ? nowBlock - config.gossipWindowBlocks : 0;
  return window > final
    ? { nowBlock, minBlock: window, minBlockReason: 'gossip-window' }
    : { nowBlock, minBlock: final, minBlockReason: 'final' };
}

/** The ids an epoch's recordsRoot covers, in canonical order: its records that took their chain places. */
export function checkpointIds(
  config: NetworkConfig,
  records: readonly StoredRecord[],
  refused: Replay['refused'],
  epoch: number,
): string[] {
  const tempo = epochBlocks(config);
  return records
    .filter((r) => r.record.block >= epoch * tempo && r.record.block < (epoch + 1) * tempo)
    .filter((r) => !CHAIN_REFUSALS.has(refused[r.id]?.code ?? ''))
    .sort(canonicalOrder)
    .map((r) => r.id)
    .filter((id, k, all) => all.indexOf(id) === k);
}

/** The recordsRoot of a list of ids (as the replay computes it). */
export function recordsRootOf(ids: readonly string[]): string {
  return bytesToHex(sha256(new TextEncoder().encode(ids.join('\n'))));
}

/**
 * Adopting a final checkpoint of `epoch` whose record ids are `ids` (checked against its recordsRoot by the
 * caller): which held records of that epoch to drop (not in the set) and which ids to fetch (not held).
 */
export function adoption(
  config: NetworkConfig,
  held: readonly StoredRecord[],
  epoch: number,
  ids: readonly string[],
): { drop: string[]; missing: string[] } {
  const tempo = epochBlocks(config);
  const certified = new Set(ids);
  const inEpoch = held.filter((r) => r.record.block >= epoch * tempo && r.record.block < (epoch + 1) * tempo);
  const heldIds = new Set(held.map((r) => r.id));
  return {
    drop: inEpoch.filter((r) => !certified.has(r.id)).map((r) => r.id),
    missing: ids.filter((id) => !heldIds.has(id)),
  };
}
