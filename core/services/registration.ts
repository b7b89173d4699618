/**
 * Registration: take a UID on a subnet at the price the ledger asks (docs/ledger.md, "Registration"): solve the
 * proof of work at the subnet's current difficulty, bound to a recent checkpoint, in the consensus engine (with
 * progress); on a test network draw the burn from the faucet if the balance is short; then publish a signed
 * `register` record offering to burn up to twice the current price (the price can rise once at the next close
 * before the record is replayed). The state follows the replay until the UID shows up.
 *
 * A node that asked to be registered (`ensureRegistered`) keeps trying until it is: an attempt that fails (no recent
 * checkpoint yet because the node has not synced, a record refused more times than MAX_RETRIES, the engine failed)
 * is tried again after a growing pause, with the reason in `state` meanwhile. A node that held a UID and lost it does
 * not register again by itself: that would burn again, which only its owner should decide. A record the network
 * finalised without (it never reached the voters) burned nothing, so that one is sent again like a refused one.
 */
import type { PrivateKey } from '@libp2p/interface';
import { epochOf, findSubnet, type NetworkConfig } from '../../shared/ledger/config.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { recordId } from '../../shared/ledger/records.ts';
import { genesisHash, RECENT_CHECKPOINT_EPOCHS } from '../../shared/ledger/state.ts';
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
  /** What the record offers to burn at most, rao (null before it is known). */
  maxBurn: string | null;
  /** In phase 'error': the node will try again by itself (see `ensureRegistered`). */
  retrying?: boolean;
}

/** A subnet's registration price as the latest replay has it: the burn (rao) and the proof-of-work bits. */
export interface RegistrationPrice {
  burn: bigint;
  difficulty: number;
}

export function registrationPrice(snapshot: LedgerSnapshot | null, netuid: number): RegistrationPrice | null {
  const sub = snapshot?.subnets.find((s) => s.netuid === netuid);
  return sub ? { burn: sub.burn, difficulty: sub.difficulty } : null;
}

/**
 * The checkpoint a proof of work made at `block` binds to: the newest final one among the recent closes, else
 * the newest closed one, else (in the network's first epochs) the genesis hash; null when none is recent.
 */
export function proofCheckpoint(config: NetworkConfig, snapshot: LedgerSnapshot | null, block: number): string | null {
  const oldest = epochOf(config, block) - RECENT_CHECKPOINT_EPOCHS;
  const recent = (snapshot?.checkpoints ?? []).filter((c) => c.epoch >= oldest && c.hash !== '');
  const chosen = recent.filter((c) => c.final).at(-1) ?? recent.at(-1);
  if (chosen) return chosen.hash;
  return oldest < 0 ? genesisHash(config) : null;
}

export interface RegistrationComponents {
  key: PrivateKey;
  engine: Pick<ConsensusEngine, 'solveRegistration'>;
  book: RecordBook;
  consensus: Pick<Consensus, 'snapshot' | 'uidOf' | 'firstSnapshot' | 'currentBlock'>;
  /** The pause before the `attempt`-th new try of a failed registration (tests shorten it). */
  retryDelayMs?: (attempt: number) => number;
}

/** Times a register record the replay refused is sent again before registration gives up. */
const MAX_RETRIES = 3;

/** 5 s, 10 s, 20 s, ... at most a minute: soon enough for a node that has just synced, cheap when it cannot. */
export const registrationRetryDelayMs = (attempt: number): number => Math.min(60_000, 5_000 * 2 ** attempt);

export class Registration {
  readonly state = new Store<RegistrationState | null>(null);
  private stopWatching: (() => void) | null = null;
  private readonly pending = new Map<number, Promise<void>>();
  /** The register record published last (its id, role and how many times it was refused and sent again). */
  /** A registration sent again after a refusal, waiting for its block. */
  private retry: ReturnType<typeof setTimeout> | null = null;
  private published: { id: string; block: number; role: 'miner' | 'validator'; retries: number } | null = null;
  /** The id of our register record if adopting a final checkpoint dropped it. */
  private droppedId: string | null = null;
  /** The registration this node asked for and does not hold yet, with the failed attempts since it last worked. */
  private wanted: { netuid: number; role: 'miner' | 'validator'; attempts: number } | null = null;
  private tryAgain: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly components: RegistrationComponents) {}

  start(): void {
    const stopFollowing = this.components.consensus.snapshot.subscribe((s) => this.follow(s));
    const stopDrops = this.components.book.onDropped((ids) => this.dropped(ids));
    this.stopWatching = () => {
      stopFollowing();
      stopDrops();
    };
  }

  stop(): void {
    this.stopWatching?.();
    if (this.retry) clearTimeout(this.retry);
    if (this.tryAgain) clearTimeout(this.tryAgain);
    this.retry = this.tryAgain = null;
    this.wanted = null;
  }

  /**
   * Register on `netuid` unless this node already holds a UID there. If this attempt fails it rejects with why, and
   * the node tries again later by itself until it holds a UID or is stopped.
   */
  ensureRegistered(netuid: number, role: 'miner' | 'validator'): Promise<void> {
    if (this.wanted?.netuid !== netuid || this.wanted.role !== role) this.wanted = { netuid, role, attempts: 0 };
    // Two Starts at once (autostart and a click) share one registration.
    let pending = this.pending.get(netuid);
    if (!pending) {
      pending = this.registerUnlessRegistered(netuid, role)
        .catch((err: unknown) => {
          this.scheduleTryAgain();
          throw err;
        })
        .finally(() => this.pending.delete(netuid));
      this.pending.set(netuid, pending);
    }
    return pending;
  }

  /** After a failed attempt at a wanted registration: try again after a pause (once; the next failure re-arms it). */
  private scheduleTryAgain(): void {
    const wanted = this.wanted;
    if (!wanted || this.tryAgain) return;
    const delay = (this.components.retryDelayMs ?? registrationRetryDelayMs)(wanted.attempts++);
    const reg = this.state.get();
    if (reg?.phase === 'error') this.state.set({ ...reg, retrying: true });
    this.tryAgain = setTimeout(() => {
      this.tryAgain = null;
      if (this.wanted === wanted) void this.ensureRegistered(wanted.netuid, wanted.role).catch(() => {});
    }, delay);
  }

  private async registerUnlessRegistered(netuid: number, role: 'miner' | 'validator'): Promise<void> {
    const { consensus, book } = this.components;
    await consensus.firstSnapshot();
    if (consensus.uidOf(netuid, book.self) !== null) {
      this.wanted = null;
      return;
    }
    const reg = this.state.get();
    // Published but not replayed yet: the UID shows up with the next replay.
    if (reg?.netuid === netuid && reg.phase === 'published') return;
    await this.register(netuid, role);
  }

  /** Mine the proof of work (progress in `state`), fund the burn if needed, then publish the record. */
  async register(netuid: number, role: 'miner' | 'validator'): Promise<void> {
    const { book, engine, consensus } = this.components;
    const subnet = findSubnet(book.network, netuid);
    if (!subnet) throw new NodeError('no-network', `This network has no subnet ${netuid}.`);
    const progress = (patch: Partial<RegistrationState>) => this.state.set({ ...this.state.get()!, ...patch });
    const snapshot = consensus.snapshot.get();
    const price = registrationPrice(snapshot, netuid) ?? {
      burn: BigInt(subnet.registration.minBurn),
      difficulty: subnet.registrationDifficulty,
    };
    const ceiling = BigInt(subnet.registration.maxBurn);
    const maxBurn = price.burn * 2n < ceiling ? price.burn * 2n : ceiling;
    this.state.set({
      netuid,
      phase: 'hashing',
      hashes: 0,
      expected: 2 ** price.difficulty,
      uid: null,
      error: null,
      maxBurn: maxBurn.toString(),
    });
    try {
      // The proof binds to a recent checkpoint; one that aged out while hashing means hashing again.
      for (let attempt = 0; ; attempt++) {
        const checkpoint = proofCheckpoint(book.network, consensus.snapshot.get(), consensus.currentBlock());
        if (!checkpoint)
          throw new NodeError(
            'not-started',
            'No recent checkpoint is known yet; registration waits for the next replay.',
          );
        const { nonce } = await engine.solveRegistration(
          { network: book.network.networkId, netuid, author: book.self, checkpoint, difficulty: price.difficulty },
          (p) => progress({ hashes: p.hashes }),
        );
        const solvedAt = consensus.currentBlock();
        if (proofCheckpoint(book.network, consensus.snapshot.get(), solvedAt) !== checkpoint && attempt < 2) continue;
        await this.fund(maxBurn);
        // The block is read after funding: the faucet claim may be signed in a later block than the proof was
        // solved in, and a record dated before its author's last one is refused as backdated (verification.spec:
        // a miner that signed its claim in block 68 and its registration in block 67, and stopped).
        const now = consensus.currentBlock();
        if (proofCheckpoint(book.network, consensus.snapshot.get(), now) !== checkpoint && attempt < 2) continue;
        const body = { netuid, nonce, role, checkpoint, maxBurn: maxBurn.toString() };
        const record = await book.publish('register', body, now);
        this.published = { id: recordId(record), block: now, role, retries: this.published?.retries ?? 0 };
        break;
      }
      progress({ phase: 'published' });
      this.follow(consensus.snapshot.get());
    } catch (err) {
      progress({ phase: 'error', error: (err as Error).message });
      throw err;
    }
  }

  /** Make sure the balance covers `amount`: on a test network from the faucet, elsewhere it must already. */
  private async fund(amount: bigint): Promise<void> {
    const { book, consensus } = this.components;
    const balance = consensus.snapshot.get()?.balances[book.self] ?? 0n;
    if (balance >= amount) return;
    const faucet = book.network.faucet;
    if (!faucet)
      throw new NodeError(
        'insufficient-funds',
        `Registration burns up to ${amount} rao; this key holds ${balance}. Send it τ first.`,
      );
    const claim = amount - balance < BigInt(faucet.maxClaim) ? amount - balance : BigInt(faucet.maxClaim);
    await book.publish('faucet.claim', { amount: claim.toString() });
  }

  private follow(snapshot: LedgerSnapshot | null): void {
    const reg = this.state.get();
    if (!reg || !snapshot) return;
    const uid = this.components.consensus.uidOf(reg.netuid, this.components.book.self);
    if (uid !== null && (reg.phase !== 'registered' || reg.uid !== uid)) {
      // Held: losing it later is for the owner to act on (see the module comment).
      this.wanted = null;
      return this.state.set({ ...reg, phase: 'registered', uid, retrying: false });
    }
    // A new record is on its way already.
    if (this.retry) return;
    // The replay refused the record (the block's registrations were taken by others that arrived later and sort
    // first, the price rose at a close, ...): register again, a few times, then say why.
    // (Also after it showed registered: a same-block registration arriving later can take the slot after the fact.)
    const waiting = reg.phase === 'published' || reg.phase === 'registered';
    const refusal = this.published && waiting ? snapshot.refused[this.published.id] : undefined;
    if (refusal) return this.sendAgain(refusal.message);
    // The network made the record's epoch final without it (it did not reach the voters in time, say while this
    // node was cut off), and this node dropped it when it adopted that checkpoint: it will never be replayed, and
    // nothing was burned. Register again, as after a refusal.
    if (uid === null && waiting && this.published && this.published.id === this.droppedId)
      return this.sendAgain('the network made its block final without it');
    if (uid === null && reg.phase === 'registered')
      this.state.set({ ...reg, phase: 'error', uid: null, error: 'This node lost its UID to a later registration.' });
  }

  /** Note that adopting a final checkpoint dropped our register record; the next replay decides (`follow`). */
  private dropped(ids: readonly string[]): void {
    if (this.published && ids.includes(this.published.id)) this.droppedId = this.published.id;
  }

  /** Publish a new register record from the next block on, or give up (and try again later) after MAX_RETRIES. */
  private sendAgain(why: string): void {
    const reg = this.state.get();
    if (!reg || !this.published || this.retry) return;
    const { role, retries, block } = this.published;
    this.published = { ...this.published, id: '', retries: retries + 1 };
    if (retries >= MAX_RETRIES) {
      this.published = null;
      this.state.set({ ...reg, phase: 'error', uid: null, error: `The registration was refused: ${why}` });
      return this.scheduleTryAgain();
    }
    // Not in the same block again (its registrations are taken): from the next one on.
    const { consensus, book } = this.components;
    const waitMs = Math.max(0, (block + 1 - consensus.currentBlock()) * book.network.blockMs);
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.register(reg.netuid, role).catch(() => this.scheduleTryAgain());
    }, waitMs);
  }
}
