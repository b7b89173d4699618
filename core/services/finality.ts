/**
 * Finality: a permitted validator votes on each epoch's checkpoint once it closes (a signed `checkpoint` record,
 * so votes travel and are kept like any record); every node follows the votes its replay counts. A node whose
 * own checkpoint lost (more than 2/3 of the permitted stake voted for another) adopts the winner: it fetches
 * the record ids that checkpoint covers from a voter, checks them against the voted hash, drops what it holds
 * of that epoch outside them, fetches what it lacks, and replays. docs/ledger.md, "Finality".
 */
import { adoption, checkpointIds, recordsRootOf } from '../../shared/ledger/finality.ts';
import { MAX_TALLIES, type CheckpointView } from '../../shared/ledger/replay.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { checkpointHash } from '../../shared/ledger/state.ts';
import type { LedgerStore } from '../platform.ts';
import { Store, type ReadableStore } from '../store.ts';
import type { FinalRecordSets } from './final-sets.ts';
import type { RecordBook } from './record-book.ts';
import type { Sync } from './sync.ts';

export interface FinalityState {
  /** The last final epoch, or -1. */
  lastFinal: number;
  /** Epochs this node voted on. */
  voted: number[];
  /** Why the last vote attempt failed (it is tried again with the next replay), or null. */
  lastVoteError: { epoch: number; error: string } | null;
  /** The last adoption: which epoch, from whom, what changed; or why it failed. */
  lastAdoption:
    { epoch: number; from: string; dropped: number; fetched: number } | { epoch: number; error: string } | null;
}

export interface FinalityComponents {
  book: Pick<RecordBook, 'self' | 'network' | 'publish' | 'drop'>;
  store: Pick<LedgerStore, 'all' | 'get'>;
  /** Where the record sets of final epochs are remembered (shared with the sync service, which serves them). */
  finalSets: FinalRecordSets;
  snapshot: ReadableStore<LedgerSnapshot | null>;
  replayNow(): Promise<unknown>;
  sync: Pick<Sync, 'fetchCheckpoint' | 'fetchRecords'>;
}

/** Another checkpoint that more than 2/3 of the permitted stake voted for, if any. */
export function outvotedBy(c: CheckpointView): CheckpointView['otherVotes'][number] | null {
  const permitted = BigInt(c.permittedStake);
  return c.otherVotes.find((o) => BigInt(o.stake) * 3n > permitted * 2n) ?? null;
}

export class Finality {
  readonly state = new Store<FinalityState>({ lastFinal: -1, voted: [], lastVoteError: null, lastAdoption: null });
  private stopWatching: (() => void) | null = null;
  private readonly voting = new Set<number>();
  private adopting: Promise<void> | null = null;
  private repairing = false;

  constructor(private readonly components: FinalityComponents) {}

  start(): void {
    this.stopWatching = this.components.snapshot.subscribe((s) => s && this.follow(s));
  }

  stop(): void {
    this.stopWatching?.();
  }

  private follow(snapshot: LedgerSnapshot): void {
    this.state.update({ lastFinal: snapshot.lastFinal });
    void this.rememberAndRepair(snapshot).catch((err: unknown) =>
      this.state.update({ lastAdoption: { epoch: -1, error: `repair failed: ${(err as Error).message}` } }),
    );
    const self = this.components.book.self;
    // An epoch this node lost comes first: adopt it, and vote on nothing from it on (every later checkpoint of
    // ours chains to the losing one, and a validator has one vote per epoch).
    const lost = snapshot.checkpoints.find((c) => !c.final && outvotedBy(c));
    if (lost && !this.adopting) {
      const winner = outvotedBy(lost)!;
      this.adopting = this.adopt(lost.epoch, winner.hash, winner.voters).finally(() => (this.adopting = null));
    }
    for (const c of snapshot.checkpoints) {
      if (lost && c.epoch >= lost.epoch) break;
      if (!c.final && c.voters.includes(self) && !c.voted.includes(self) && !this.voting.has(c.epoch))
        void this.vote(c);
    }
    for (const epoch of this.voting) if (epoch < snapshot.lastFinal - MAX_TALLIES) this.voting.delete(epoch);
  }

  /**
   * Remember the record set of each epoch as it first becomes final (voted: bootstrap epochs stay open), and
   * repair the store when a replay shows a remembered final epoch with other roots: a record of it slipped in.
   */
  private async rememberAndRepair(snapshot: LedgerSnapshot): Promise<void> {
    if (this.repairing) return;
    this.repairing = true;
    try {
      const { book, store, finalSets } = this.components;
      const views = new Map(snapshot.checkpoints.map((c) => [c.epoch, c]));
      const fresh = snapshot.checkpoints.filter(
        (c) => c.final && c.epoch <= snapshot.lastVotedFinal && !finalSets.has(c.epoch),
      );
      // Read the store once for all of them (it is every record held).
      const held = fresh.length > 0 ? (await store.all()).map((r) => ({ id: r.id, record: r.record })) : [];
      for (const c of fresh) {
        const ids = checkpointIds(book.network, held, snapshot.refused, c.epoch);
        // A record stored since this replay ran changes the set: try again with the next replay.
        const { epoch, hash, recordsRoot, stateRoot, previous } = c;
        if (recordsRootOf(ids) === recordsRoot)
          finalSets.remember({ epoch, hash, recordsRoot, stateRoot, previous, ids });
      }
      let dropped = 0;
      for (const set of finalSets.all()) {
        const now = views.get(set.epoch);
        if (!now || now.hash === set.hash) continue;
        const held = (await store.all()).map((r) => ({ id: r.id, record: r.record }));
        const { drop } = adoption(book.network, held, set.epoch, set.ids);
        await book.drop(drop);
        dropped += drop.length;
      }
      if (dropped > 0) await this.components.replayNow();
    } finally {
      this.repairing = false;
    }
  }

  private async vote(c: CheckpointView): Promise<void> {
    this.voting.add(c.epoch);
    try {
      const { book, store, finalSets, snapshot } = this.components;
      const held = (await store.all()).map((r) => ({ id: r.id, record: r.record }));
      const ids = checkpointIds(book.network, held, snapshot.get()?.refused ?? {}, c.epoch);
      // Vote only for a set this node can produce again (the store may have changed since the replay).
      if (recordsRootOf(ids) !== c.recordsRoot) throw new Error('the store changed since the replay');
      const { epoch, hash, recordsRoot, stateRoot, previous } = c;
      finalSets.rememberVote({ epoch, hash, recordsRoot, stateRoot, previous, ids });
      await this.components.book.publish('checkpoint', {
        epoch: c.epoch,
        recordsRoot: c.recordsRoot,
        stateRoot: c.stateRoot,
        previous: c.previous,
      });
      this.state.update({ voted: [...this.state.get().voted, c.epoch].slice(-32) });
    } catch (err) {
      this.voting.delete(c.epoch); // try again with the next replay
      this.state.update({ lastVoteError: { epoch: c.epoch, error: (err as Error).message } });
    }
  }

  /**
   * Adopt the checkpoint of `epoch` with hash `hash`, from the first of its voters that serves it correctly. When
   * the winner chains to an earlier checkpoint this node computed differently, that one is adopted too, back to
   * the first epoch on which both agree (a node that synced a record the voters never took, say).
   */
  async adopt(epoch: number, hash: string, voters: readonly string[]): Promise<void> {
    const { book, store, sync, snapshot } = this.components;
    let error = 'no voter served it';
    // Our own vote first: if this node voted for the winner, it holds the set already (it may be the only voter).
    for (const voter of [...voters].sort((a, b) => (a === book.self ? -1 : b === book.self ? 1 : 0))) {
      try {
        const sets = [];
        for (let target = { epoch, hash }; ;) {
          const set =
            voter === book.self
              ? (this.components.finalSets.voted(target.epoch, target.hash) ??
                this.components.finalSets.get(target.epoch))
              : await sync.fetchCheckpoint(voter, target.epoch);
          if (!set) throw new Error(`it holds no set of epoch ${target.epoch}`);
          if (checkpointHash(book.network.networkId, { ...set, epoch: target.epoch }) !== target.hash)
            throw new Error(`its checkpoint of epoch ${target.epoch} is not the one voted for`);
          if (recordsRootOf(set.ids) !== set.recordsRoot) throw new Error('its ids do not make the recordsRoot');
          sets.unshift(set);
          const mine = snapshot.get()?.checkpoints.find((c) => c.epoch === target.epoch - 1);
          if (target.epoch === 0 || !mine || mine.hash === set.previous) break;
          target = { epoch: target.epoch - 1, hash: set.previous };
        }
        // Fetch everything first, and check nothing is missing, before dropping anything: a voter that serves the
        // ids but withholds the records must not leave this node with less than it had.
        let fetched = 0;
        for (const set of sets) {
          const held = (await store.all()).map((r) => ({ id: r.id, record: r.record }));
          fetched += await sync.fetchRecords(
            voter,
            adoption(book.network, held, set.epoch, set.ids).missing,
            `adopt:${voter}`,
          );
        }
        const wanted = sets.flatMap((set) => set.ids);
        const missing = (await store.get(wanted)).filter((r) => !r).length;
        if (missing > 0) throw new Error(`it withheld ${missing} of the records its checkpoint holds`);
        let dropped = 0;
        for (const set of sets) {
          const held = (await store.all()).map((r) => ({ id: r.id, record: r.record }));
          const { drop } = adoption(book.network, held, set.epoch, set.ids);
          await book.drop(drop);
          dropped += drop.length;
        }
        await this.components.replayNow();
        this.state.update({ lastAdoption: { epoch, from: voter, dropped, fetched } });
        return;
      } catch (err) {
        error = `${voter}: ${(err as Error).message}`;
      }
    }
    this.state.update({ lastAdoption: { epoch, error } });
  }
}

/** One closed epoch as a page or a test sees it: its roots, the stake behind them, and whether it is final. */
export interface EpochAgreement {
  epoch: number;
  recordsRoot: string;
  stateRoot: string;
  /** Stake (rao) of permitted validators whose votes name these same roots; '0' for epochs whose tally is gone. */
  agreeingStake: string;
  /** Stake of every validator with a permit in that epoch. */
  permittedStake: string;
  /** Voters that named other roots. */
  disagreeing: number;
  final: boolean;
  /** Known only by its checkpoint: the epoch is at or before the one this node joined from (votes not kept). */
  joined: boolean;
}

/**
 * Every closed epoch of `netuid` in `snapshot`, with the votes on its checkpoint where the replay kept them. A node
 * that joined from a checkpoint knows the epochs before it by their checkpoints only (final, votes not kept).
 */
export function epochAgreement(snapshot: LedgerSnapshot | null, netuid: number): EpochAgreement[] {
  if (!snapshot) return [];
  const tallies = new Map(snapshot.checkpoints.map((c) => [c.epoch, c]));
  const joined: EpochAgreement[] = snapshot.chain
    .filter((l) => l.epoch <= snapshot.baseEpoch)
    .map((l) => ({
      epoch: l.epoch,
      recordsRoot: l.recordsRoot,
      stateRoot: l.stateRoot,
      agreeingStake: '0',
      permittedStake: '0',
      disagreeing: 0,
      final: true,
      joined: true,
    }));
  return joined.concat(
    snapshot.epochs
      .filter((e) => e.netuid === netuid)
      .map((e) => {
        const c = tallies.get(e.epoch);
        return {
          epoch: e.epoch,
          recordsRoot: e.recordsRoot,
          stateRoot: e.stateRoot,
          agreeingStake: c?.agreeingStake ?? '0',
          permittedStake: c?.permittedStake ?? '0',
          disagreeing: c?.otherVotes.reduce((n, o) => n + o.voters.length, 0) ?? 0,
          final: e.epoch <= snapshot.lastFinal,
          joined: false,
        };
      }),
  );
}
