/**
 * Consensus: the network's block clock, and a replay of the record book whenever records arrived or an epoch
 * boundary passed (epochs close `graceBlocks` after their last block, so late records still count). The replay
 * runs in the platform's consensus engine (a worker in a tab); its snapshot is what every other service reads.
 */
import { blockAt, type NetworkConfig } from '../../shared/ledger/config.ts';
import { uidOf, type LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import type { Clock, ConsensusEngine } from '../platform.ts';
import { Store, waitFor } from '../store.ts';
import type { RecordBook } from './record-book.ts';

export interface ConsensusComponents {
  engine: ConsensusEngine;
  book: Pick<RecordBook, 'onStored'>;
  network: NetworkConfig;
  clock: Clock;
}

export interface ConsensusInit {
  tickMs?: number;
}

export class Consensus {
  readonly block: Store<number>;
  /** The latest replay; null until the first one finished. */
  readonly snapshot = new Store<LedgerSnapshot | null>(null);
  /** The last replay failure, or null. */
  readonly error = new Store<string | null>(null);
  private timer: ReturnType<typeof setInterval> | null = null;
  private dirty = true;
  private lastCloseThrough = -1;
  private running: Promise<unknown> | null = null;
  private stopListening: (() => void) | null = null;

  constructor(
    private readonly components: ConsensusComponents,
    private readonly init: ConsensusInit = {},
  ) {
    this.block = new Store(this.currentBlock());
  }

  get network(): NetworkConfig {
    return this.components.network;
  }

  start(): void {
    this.stopListening = this.components.book.onStored(() => (this.dirty = true));
    this.timer = setInterval(() => void this.tick(), this.init.tickMs ?? 1000);
    void this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stopListening?.();
  }

  currentBlock(): number {
    return blockAt(this.components.network, this.components.clock.now());
  }

  /** The block through which epochs may close now. */
  closeThrough(): number {
    return Math.max(0, this.currentBlock() - this.components.network.graceBlocks);
  }

  /** Resolves with the first snapshot (now if there is one). */
  firstSnapshot(): Promise<LedgerSnapshot | null> {
    return waitFor(this.snapshot, (s) => s !== null);
  }

  /** The UID `hotkey` holds on `netuid` in the latest replay, or null. */
  uidOf(netuid: number, hotkey: string): number | null {
    return uidOf(this.snapshot.get(), netuid, hotkey);
  }

  /** Replay now (waits for a replay already running, then runs a fresh one). */
  async replayNow(): Promise<LedgerSnapshot> {
    while (this.running) await this.running;
    return this.replay(this.closeThrough());
  }

  private replay(closeThrough: number): Promise<LedgerSnapshot> {
    this.dirty = false;
    const run = this.components.engine.computeLedger(this.components.network, closeThrough).then(
      (snapshot) => {
        this.lastCloseThrough = closeThrough;
        this.snapshot.set(snapshot);
        this.error.set(null);
        return snapshot;
      },
      (err: unknown) => {
        this.dirty = true;
        this.error.set(`The ledger replay failed: ${(err as Error).message}`);
        throw err;
      },
    );
    // The bookkeeping copy must not reject unobserved: the caller of `replay` handles the error.
    this.running = run
      .then(
        (s) => s,
        () => null,
      )
      .finally(() => (this.running = null));
    return run;
  }

  private async tick(): Promise<void> {
    this.block.set(this.currentBlock());
    const closeThrough = this.closeThrough();
    const boundaryPassed = this.components.network.subnets.some(
      (s) => Math.floor(closeThrough / s.tempo) !== Math.floor(this.lastCloseThrough / s.tempo),
    );
    if ((this.dirty || boundaryPassed) && !this.running) await this.replay(closeThrough).catch(() => {});
  }
}
