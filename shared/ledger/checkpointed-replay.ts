/**
 * Checkpointed replay (THREATS.md finding 5): a replay from genesis grows with history (about 4 s after a
 * production day, 130 s after a month). Nothing in or before an epoch final by votes can change any more, so a
 * node keeps the state at the close of its last voted-final epoch (the replay's `finalState`, whose hash the
 * final checkpoint names) and replays only the records after it. The first replay after a start runs from the
 * node's joined base (or genesis); every later one from the newest final state it has seen.
 *
 * What a base drops from the replay's own result is kept here: the epochs closed before it (pages chart them).
 */
import { epochBlocks, type NetworkConfig } from './config.ts';
import { StateDigest } from './state-text.ts';
import { replay, type ClosedEpoch, type Replay, type ReplayBase, type StoredRecord } from './replay.ts';

/** Where a replay reads the records it needs. */
export interface ReplaySource {
  /** Every stored record at or after block `block`. */
  recordsFrom(block: number): Promise<StoredRecord[]>;
  /** The base this node joined from (its records start there), or null. */
  joinedBase(): Promise<ReplayBase | null>;
}

export interface CheckpointedResult {
  result: Replay;
  /** How many records this replay read (all of them after the base it started from). */
  replayed: number;
  /** The epoch it started after, or -1 (genesis). */
  startedAfter: number;
}

/** Summaries of epochs before the base kept for the pages (the tab's database keeps every closed epoch). */
export const EARLIER_EPOCHS_KEPT = 64;

export class CheckpointedReplay {
  private base: ReplayBase | null = null;
  /** Closed epochs before `base` (summaries of epochs the base replaced), oldest first. */
  private earlier: ClosedEpoch[] = [];
  private configKey = '';
  /** Entry hashes remembered from the last replay's closes: the next one rehashes only what changed. */
  private digest = new StateDigest();

  /** Replay `source` for `config`, closing epochs through `closeThrough`, from the newest final state known. */
  async run(config: NetworkConfig, source: ReplaySource, closeThrough: number): Promise<CheckpointedResult> {
    // Another network (or a changed config) starts over.
    const key = `${config.networkId}/${config.genesisMs}`;
    if (key !== this.configKey) [this.base, this.earlier, this.configKey] = [null, [], key];
    const joined = await source.joinedBase();
    // A base joined meanwhile (newer than ours) replaces what we kept: the store no longer holds what came before.
    if (joined && (!this.base || joined.epoch > this.base.epoch)) [this.base, this.earlier] = [joined, []];
    const base = this.base ?? undefined;
    const from = base ? (base.epoch + 1) * epochBlocks(config) : 0;
    const records = await source.recordsFrom(from);
    const result = replay(config, records, closeThrough, base, this.digest);
    const epochs = [...this.earlier, ...result.epochs];
    // Move the base to the newest state final by votes, and keep the summaries of the epochs it covers.
    const final = result.finalState;
    if (final && final.epoch > (base?.epoch ?? -1)) {
      this.base = {
        epoch: final.epoch,
        stateText: final.text,
        chain: result.chain.filter((l) => l.epoch <= final.epoch),
      };
      const covered = epochs.filter((e) => e.epoch <= final.epoch);
      this.earlier = covered.filter((e) => e.epoch > final.epoch - EARLIER_EPOCHS_KEPT);
    }
    // `baseEpoch` stays what the store starts from (the epoch joined from, or pruned to): epochs at or before it
    // are the chain's links only, and `epochs` holds what came after (pages show both, without overlap).
    const baseEpoch = joined?.epoch ?? -1;
    return { result: { ...result, epochs, baseEpoch }, replayed: records.length, startedAfter: base?.epoch ?? -1 };
  }

  /** The epoch replays now start after, or -1. */
  get baseEpoch(): number {
    return this.base?.epoch ?? -1;
  }
}
