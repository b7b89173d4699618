/**
 * The record sets of the epochs this node has seen final: once an epoch is final, its set of records is fixed
 * for good. Kept so that a node can repair its own store when a record of a final epoch slipped in (it arrived by
 * sync in the moment before the replay showed the epoch final) and serve the exact set to peers that adopt it.
 */
export interface FinalRecordSet {
  epoch: number;
  hash: string;
  recordsRoot: string;
  stateRoot: string;
  previous: string;
  ids: string[];
}

/** At most this many epochs are remembered (older ones cannot change: records that old are refused on arrival). */
export const MAX_FINAL_SETS = 32;

export class FinalRecordSets {
  private readonly sets = new Map<number, FinalRecordSet>();

  get(epoch: number): FinalRecordSet | undefined {
    return this.sets.get(epoch);
  }

  has(epoch: number): boolean {
    return this.sets.has(epoch);
  }

  remember(set: FinalRecordSet): void {
    this.sets.set(set.epoch, set);
    for (const epoch of [...this.sets.keys()].sort((a, b) => a - b).slice(0, -MAX_FINAL_SETS)) this.sets.delete(epoch);
  }

  all(): FinalRecordSet[] {
    return [...this.sets.values()].sort((a, b) => a.epoch - b.epoch);
  }
}
