/**
 * Finality: a permitted validator votes on each epoch's checkpoint once it closes (a signed `checkpoint` record,
 * so votes travel and are kept like any record); every node follows the votes its replay counts. A node whose
 * own checkpoint lost (more than 2/3 of the permitted stake voted for another) adopts the winner: it fetches
 * the record ids that checkpoint covers from a voter, checks them against the voted hash, drops what it holds
 * of that epoch outside them, fetches what it lacks, and replays. docs/ledger.md, "Finality".
 */
import { adoption, recordsRootOf } from '../../shared/ledger/finality.ts';
import type { CheckpointView } from '../../shared/ledger/replay.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { checkpointHash } from '../../shared/ledger/state.ts';
import type { LedgerStore } from '../platform.ts';
import { Store, type ReadableStore } from '../store.ts';
import type { RecordBook } from './record-book.ts';
import type { Sync } from './sync.ts';

export interface FinalityState {
  /** The last final epoch, or -1. */
  lastFinal: number;
  /** Epochs this node voted on. */
  voted: number[];
  /** The last adoption: which epoch, from whom, what changed; or why it failed. */
  lastAdoption:
    { epoch: number; from: string; dropped: number; fetched: number } | { epoch: number; error: string } | null;
}

export interface FinalityComponents {
  book: Pick<RecordBook, 'self' | 'network' | 'publish' | 'drop'>;
  store: Pick<LedgerStore, 'all'>;
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
  readonly state = new Store<FinalityState>({ lastFinal: -1, voted: [], lastAdoption: null });
  private stopWatching: (() => void) | null = null;
  private readonly voting = new Set<number>();
  private adopting: Promise<void> | null = null;

  constructor(private readonly components: FinalityComponents) {}

  start(): void {
    this.stopWatching = this.components.snapshot.subscribe((s) => s && this.follow(s));
  }

  stop(): void {
    this.stopWatching?.();
  }

  private follow(snapshot: LedgerSnapshot): void {
    this.state.update({ lastFinal: snapshot.lastFinal });
    const self = this.components.book.self;
    for (const c of snapshot.checkpoints) {
      if (!c.final && c.voters.includes(self) && !c.voted.includes(self) && !this.voting.has(c.epoch))
        void this.vote(c);
      const winner = !c.final ? outvotedBy(c) : null;
      if (winner && !this.adopting)
        this.adopting = this.adopt(c.epoch, winner.hash, winner.voters).finally(() => (this.adopting = null));
    }
  }

  private async vote(c: CheckpointView): Promise<void> {
    this.voting.add(c.epoch);
    try {
      await this.components.book.publish('checkpoint', {
        epoch: c.epoch,
        recordsRoot: c.recordsRoot,
        stateRoot: c.stateRoot,
        previous: c.previous,
      });
      this.state.update({ voted: [...this.state.get().voted, c.epoch].slice(-32) });
    } catch {
      this.voting.delete(c.epoch); // try again with the next replay
    }
  }

  /** Adopt the checkpoint of `epoch` with hash `hash`, from the first of its voters that serves it correctly. */
  async adopt(epoch: number, hash: string, voters: readonly string[]): Promise<void> {
    const { book, store, sync } = this.components;
    let error = 'no voter served it';
    for (const voter of voters) {
      if (voter === book.self) continue;
      try {
        const set = await sync.fetchCheckpoint(voter, epoch);
        if (checkpointHash(book.network.networkId, { ...set, epoch }) !== hash)
          throw new Error('its checkpoint is not the one voted for');
        if (recordsRootOf(set.ids) !== set.recordsRoot) throw new Error('its ids do not make the recordsRoot');
        const held = (await store.all()).map((r) => ({ id: r.id, record: r.record }));
        const { drop, missing } = adoption(book.network, held, epoch, set.ids);
        const fetched = await sync.fetchRecords(voter, missing, `adopt:${voter}`);
        await book.drop(drop);
        await this.components.replayNow();
        this.state.update({ lastAdoption: { epoch, from: voter, dropped: drop.length, fetched } });
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
}

/** Every closed epoch of `netuid` in `snapshot`, with the votes on its checkpoint where the replay kept them. */
export function epochAgreement(snapshot: LedgerSnapshot | null, netuid: number): EpochAgreement[] {
  if (!snapshot) return [];
  const tallies = new Map(snapshot.checkpoints.map((c) => [c.epoch, c]));
  return snapshot.epochs
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
      };
    });
}
