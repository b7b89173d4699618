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
  /** The sets this node voted for, by epoch: if a record slips in before the epoch shows final here, this node
   * can still restore the set it voted for (it may be the only voter). */
  private readonly votedSets = new Map<number, FinalRecordSet>();

  rememberVote(set: FinalRecordSet): void {
    this.votedSets.set(set.epoch, set);
    for (const epoch of [...this.votedSets.keys()].sort((a, b) => a - b).slice(0, -MAX_FINAL_SETS))
      this.votedSets.delete(epoch);
  }

  /** The set this node voted for in `epoch`, if it had hash `hash`. */
  voted(epoch: number, hash: string): FinalRecordSet | undefined {
    const set = this.votedSets.get(epoch);
    return set?.hash === hash ? set : undefined;
  }

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
