/**
 * Registration: take a UID on a subnet by solving the network's proof of work in the consensus engine (with
 * progress), then publishing a signed `register` record. The state follows the replay until the UID shows up.
 */
import type { PrivateKey } from '@libp2p/interface';
import { findSubnet } from '../../shared/ledger/config.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { NodeError } from '../../shared/errors.ts';
import type { ConsensusEngine } from '../platform.ts';
import { Store } from '../store.ts';
import type { Consensus } from './consensus.ts';
import type { RecordBook } from './record-book.ts';

export interface RegistrationState {
  netuid: number;
  phase: 'idle' | 'hashing' | 'published' | 'registered' | 'error';
  hashes: number;
  expected: number;
  uid: number | null;
  error: string | null;
}

export interface RegistrationComponents {
  key: PrivateKey;
  engine: Pick<ConsensusEngine, 'solveRegistration'>;
  book: RecordBook;
  consensus: Pick<Consensus, 'snapshot' | 'uidOf' | 'firstSnapshot' | 'currentBlock'>;
}

export class Registration {
  readonly state = new Store<RegistrationState | null>(null);
  private stopWatching: (() => void) | null = null;
  private readonly pending = new Map<number, Promise<void>>();

  constructor(private readonly components: RegistrationComponents) {}

  start(): void {
    this.stopWatching = this.components.consensus.snapshot.subscribe((s) => this.follow(s));
  }

  stop(): void {
    this.stopWatching?.();
  }

  /** Register on `netuid` unless this node already holds a UID there. */
  ensureRegistered(netuid: number, role: 'miner' | 'validator'): Promise<void> {
    // Two Starts at once (autostart and a click) share one registration.
    let pending = this.pending.get(netuid);
    if (!pending) {
      pending = this.registerUnlessRegistered(netuid, role).finally(() => this.pending.delete(netuid));
      this.pending.set(netuid, pending);
    }
    return pending;
  }

  private async registerUnlessRegistered(netuid: number, role: 'miner' | 'validator'): Promise<void> {
    const { consensus, book } = this.components;
    await consensus.firstSnapshot();
    if (consensus.uidOf(netuid, book.self) !== null) return;
    const reg = this.state.get();
    // Published but not replayed yet: the UID shows up with the next replay.
    if (reg?.netuid === netuid && reg.phase === 'published') return;
    await this.register(netuid, role);
  }

  /** Mine the proof of work (progress in `state`), then publish the record. */
  async register(netuid: number, role: 'miner' | 'validator'): Promise<void> {
    const { book, engine, consensus } = this.components;
    const subnet = findSubnet(book.network, netuid);
    if (!subnet) throw new NodeError('no-network', `This network has no subnet ${netuid}.`);
    const progress = (patch: Partial<RegistrationState>) => this.state.set({ ...this.state.get()!, ...patch });
    this.state.set({
      netuid,
      phase: 'hashing',
      hashes: 0,
      expected: 2 ** subnet.registrationDifficulty,
      uid: null,
      error: null,
    });
    try {
      const block = consensus.currentBlock();
      const { nonce } = await engine.solveRegistration(
        {
          network: book.network.networkId,
          netuid,
          author: book.self,
          block,
          difficulty: subnet.registrationDifficulty,
        },
        (p) => progress({ hashes: p.hashes }),
      );
      await book.publish('register', { netuid, nonce, role }, block);
      progress({ phase: 'published' });
      this.follow(consensus.snapshot.get());
    } catch (err) {
      progress({ phase: 'error', error: (err as Error).message });
      throw err;
    }
  }

  private follow(snapshot: LedgerSnapshot | null): void {
    const reg = this.state.get();
    if (!reg || !snapshot) return;
    const uid = this.components.consensus.uidOf(reg.netuid, this.components.book.self);
    if (uid !== null && (reg.phase !== 'registered' || reg.uid !== uid))
      this.state.set({ ...reg, phase: 'registered', uid });
  }
}
