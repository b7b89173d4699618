/**
 * The ledger services of one network, assembled in dependency order: the record book (check and store), gossip
 * and sync (receive), consensus (replay into a snapshot), agreement (signed roots) and registration.
 */
import type { PrivateKey } from '@libp2p/interface';
import type { NetworkConfig } from '../shared/ledger/config.ts';
import { NodeError } from '../shared/errors.ts';
import { Admission } from '../shared/ledger/admission.ts';
import { epochBlocks } from '../shared/ledger/config.ts';
import type { PeerBans } from './peer-bans.ts';
import type { Clock, ConsensusEngine, Libp2pNode, LedgerStore } from './platform.ts';
import { Store } from './store.ts';
import { FinalRecordSets } from './services/final-sets.ts';
import { Finality } from './services/finality.ts';
import { Consensus } from './services/consensus.ts';
import type { PeerTable } from './services/peers.ts';
import { RecordBook } from './services/record-book.ts';
import { RecordGossip } from './services/record-gossip.ts';
import { Registration } from './services/registration.ts';
import { Wallet } from './services/wallet.ts';
import type { RpcRouter } from './services/rpc.ts';
import { Join } from './services/join.ts';
import { Pruning } from './services/pruning.ts';
import { Sync } from './services/sync.ts';

export interface LedgerComponents {
  libp2p: Libp2pNode;
  key: PrivateKey;
  network: NetworkConfig;
  store: LedgerStore;
  engine: ConsensusEngine;
  clock: Clock;
  rpc: RpcRouter;
  peers: PeerTable;
  /** Keep all of history: never join from a checkpoint. */
  archive?: boolean;
  /** Peers this node refuses for a while (gossip bans those it hangs up on for flooding). */
  bans?: PeerBans;
}

export class LedgerServices {
  readonly network: NetworkConfig;
  readonly book: RecordBook;
  readonly gossip: RecordGossip;
  readonly sync: Sync;
  readonly join: Join;
  readonly consensus: Consensus;
  readonly finality: Finality;
  readonly registration: Registration;
  /** Balances, stakes, earnings and the records that move τ, for this node's key. */
  readonly wallet: Wallet;
  /** The state checks peers' records pass before they are stored (docs/ledger.md, "Admission"). */
  readonly admission: Admission;
  /** Rebases onto the last voted-final state and drops the records before it; null on an archive. */
  readonly pruning: Pruning | null;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(c: LedgerComponents) {
    this.network = c.network;
    const countRefusal = (peer: string) => c.rpc.countRefusal(peer);
    // What the record book refuses depends on what the replay found final: one store carries it across.
    const lastFinal = new Store(-1);
    this.admission = new Admission(c.network);
    this.book = new RecordBook({
      store: c.store,
      key: c.key,
      network: c.network,
      clock: c.clock,
      lastFinal,
      admission: this.admission,
      countRefusal,
    });
    this.gossip = new RecordGossip({ libp2p: c.libp2p, book: this.book, rpc: c.rpc, bans: c.bans });
    this.consensus = new Consensus({ engine: c.engine, book: this.book, network: c.network, clock: c.clock });
    // The door closes on epochs final by votes, and on epochs this node voted on itself: a record of one that
    // arrives after the vote would make this node's checkpoint differ from the one it signed.
    const lastVoted = () => Math.max(-1, ...this.finality.state.get().voted);
    const closeDoor = () => lastFinal.set(Math.max(this.consensus.snapshot.get()?.lastVotedFinal ?? -1, lastVoted()));
    // The record sets of epochs seen final: remembered by the finality service, served by sync.
    const finalSets = new FinalRecordSets();
    this.join = new Join(
      {
        rpc: c.rpc,
        peers: c.peers,
        store: c.store,
        book: this.book,
        snapshot: this.consensus.snapshot,
        replayNow: () => this.consensus.replayNow(),
        clock: c.clock,
      },
      c.archive ? { never: true } : {},
    );
    this.sync = new Sync({
      store: c.store,
      book: this.book,
      rpc: c.rpc,
      peers: c.peers,
      snapshot: this.consensus.snapshot,
      finalSets,
      join: this.join,
    });
    this.finality = new Finality({
      book: this.book,
      store: c.store,
      finalSets,
      snapshot: this.consensus.snapshot,
      replayNow: () => this.consensus.replayNow(),
      sync: this.sync,
    });
    this.consensus.snapshot.subscribe(closeDoor);
    this.finality.state.subscribe(closeDoor);
    this.pruning = c.archive
      ? null
      : new Pruning({
          store: c.store,
          snapshot: this.consensus.snapshot,
          network: c.network,
          clock: c.clock,
          reloadHead: () => this.book.reloadHead(),
          self: this.book.self,
        });
    this.wallet = new Wallet({
      book: this.book,
      network: c.network,
      snapshot: this.consensus.snapshot,
      admission: this.admission,
    });
    this.registration = new Registration({
      key: c.key,
      engine: c.engine,
      book: this.book,
      consensus: this.consensus,
    });
  }

  async start(): Promise<void> {
    // Admission judges by the latest replay, and forgets quotas of blocks nothing can arrive for any more.
    this.unsubscribe.push(
      this.consensus.snapshot.subscribe((s) => s && this.admission.rebase(s)),
      this.consensus.block.subscribe((block) => {
        const final = this.consensus.snapshot.get()?.lastVotedFinal ?? -1;
        const tempo = epochBlocks(this.network);
        this.admission.prune(Math.max((final + 1) * tempo, block - 4 * tempo));
      }),
    );
    await this.book.start();
    this.gossip.start();
    await this.sync.start();
    this.consensus.start();
    this.finality.start();
    this.pruning?.start();
    this.registration.start();
  }

  stop(): void {
    this.registration.stop();
    this.pruning?.stop();
    this.finality.stop();
    this.consensus.stop();
    this.sync.stop();
    this.gossip.stop();
    for (const off of this.unsubscribe.splice(0)) off();
  }

  /**
   * Test networks only: draw `amount` rao from the faucet with a signed `faucet.claim`, then stake it on `hotkey`
   * (this node becomes its nominator, or stakes on itself).
   */
  async faucetStake(hotkey: string, amount: bigint): Promise<void> {
    if (!this.network.faucet)
      throw new NodeError('no-network', `${this.network.networkId} has no faucet; only test networks do.`);
    await this.book.publish('faucet.claim', { amount: amount.toString() });
    await this.book.publish('stake.add', { hotkey, amount: amount.toString() });
  }
}
