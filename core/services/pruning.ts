/**
 * Pruning: a node that is not an archive keeps its storage bounded by rebasing onto its own last state final by
 * votes, every few epochs, and dropping the records before it (docs/ledger.md, "Pruning"). The base it keeps is
 * what a joining node keeps (shared/ledger/join.ts, JoinedBase): the state text its final checkpoint names, a
 * thinned proof of the checkpoint chain (keptProof) and the records of the voterless first epochs, so it still
 * serves joining nodes. Records of final epochs can change nothing (docs/ledger.md, "Finality"): dropping them
 * changes no replay's result; records after the base stay for sync, adoption and the next replays.
 */
import { epochBlocks, type NetworkConfig } from '../../shared/ledger/config.ts';
import { keptProof, voterlessPrefix, type JoinedBase } from '../../shared/ledger/join.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import type { LedgerStore } from '../platform.ts';
import { Store, type ReadableStore } from '../store.ts';

export interface PruningComponents {
  store: Pick<LedgerStore, 'base' | 'setBase' | 'keysFrom' | 'get' | 'count'>;
  snapshot: ReadableStore<LedgerSnapshot | null>;
  network: NetworkConfig;
  clock: { now(): number };
  /** Read again what depends on the store (the record book's counts and chain head). */
  reloadHead(): Promise<void>;
  self: string;
}

export interface PruningInit {
  /** Rebase once the newest voted-final epoch is this many epochs past the stored base (default 16). */
  everyEpochs?: number;
}

export interface PruningState {
  /** The epoch the store starts after, or -1 (it holds everything from genesis). */
  baseEpoch: number;
  /** Records dropped by the last rebase, and how many rebases ran. */
  dropped: number;
  rebases: number;
  error: string | null;
}

export class Pruning {
  readonly state = new Store<PruningState>({ baseEpoch: -1, dropped: 0, rebases: 0, error: null });
  private running = false;
  private stopWatching: (() => void) | null = null;

  constructor(
    private readonly components: PruningComponents,
    private readonly init: PruningInit = {},
  ) {}

  start(): void {
    this.stopWatching = this.components.snapshot.subscribe((s) => void this.maybeRebase(s));
  }

  stop(): void {
    this.stopWatching?.();
  }

  /** Rebase onto `snapshot`'s final state if it is far enough past the stored base. Resolves true if it did. */
  async maybeRebase(snapshot: LedgerSnapshot | null): Promise<boolean> {
    const final = snapshot?.finalState;
    if (!snapshot || !final || this.running) return false;
    const { store, network } = this.components;
    this.running = true;
    try {
      const current = await store.base();
      const every = this.init.everyEpochs ?? 16;
      if (final.epoch < (current?.epoch ?? -1) + every) return false;
      const tempo = epochBlocks(network);
      const dropBelow = (final.epoch + 1) * tempo;
      const chain = snapshot.chain.filter((l) => l.epoch <= final.epoch);
      // Every row from the old base's end on: what becomes the votes and prefix kept, and what is dropped.
      const keys = await store.keysFrom((current ? current.epoch + 1 : 0) * tempo);
      const below = keys.filter((k) => k.block < dropBelow);
      const rows = (await store.get(below.map((k) => k.id))).filter((r) => r !== undefined);
      const prefixEnd = voterlessPrefix(chain) * tempo;
      // The votes proving each link: those the old base kept and those in the rows dropped now (votes on the
      // last epochs are records of later blocks, and stay in the store); thinned, so the proof kept grows with
      // how often the voters change, not with the network's age.
      const votes = [...(current?.votes ?? []), ...rows.filter((r) => r.kind === 'checkpoint').map((r) => r.record)];
      const base: JoinedBase = {
        epoch: final.epoch,
        stateText: final.text,
        ...keptProof(network, chain, votes, final.epoch),
        prefix: [...(current?.prefix ?? []), ...rows.filter((r) => r.block < prefixEnd).map((r) => r.record)],
        from: this.components.self,
        at: this.components.clock.now(),
      };
      await store.setBase(base, dropBelow);
      await this.components.reloadHead();
      const s = this.state.get();
      this.state.set({ baseEpoch: final.epoch, dropped: rows.length, rebases: s.rebases + 1, error: null });
      return true;
    } catch (err) {
      this.state.update({ error: `Pruning failed: ${(err as Error).message}` });
      return false;
    } finally {
      this.running = false;
    }
  }
}
