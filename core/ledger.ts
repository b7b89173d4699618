/**
 * The ledger services of one network, assembled in dependency order: the record book (check and store), gossip
 * and sync (receive), consensus (replay into a snapshot), agreement (signed roots) and registration.
 */
import type { PrivateKey } from '@libp2p/interface';
import type { NetworkConfig } from '../shared/ledger/config.ts';
import { faucetKey } from '../shared/ledger/faucet.ts';
import { NodeError } from '../shared/errors.ts';
import type { Clock, ConsensusEngine, Libp2pNode, LedgerStore } from './platform.ts';
import { Agreement } from './services/agreement.ts';
import { Consensus } from './services/consensus.ts';
import type { PeerTable } from './services/peers.ts';
import { RecordBook } from './services/record-book.ts';
import { RecordGossip } from './services/record-gossip.ts';
import { Registration } from './services/registration.ts';
import type { RpcRouter } from './services/rpc.ts';
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
}

export class LedgerServices {
  readonly network: NetworkConfig;
  readonly book: RecordBook;
  readonly gossip: RecordGossip;
  readonly sync: Sync;
  readonly consensus: Consensus;
  readonly agreement: Agreement;
  readonly registration: Registration;

  constructor(c: LedgerComponents) {
    this.network = c.network;
    const countRefusal = (peer: string) => c.rpc.countRefusal(peer);
    this.book = new RecordBook({ store: c.store, key: c.key, network: c.network, clock: c.clock, countRefusal });
    this.gossip = new RecordGossip({ libp2p: c.libp2p, book: this.book, rpc: c.rpc });
    this.sync = new Sync({ store: c.store, book: this.book, rpc: c.rpc, peers: c.peers });
    this.consensus = new Consensus({ engine: c.engine, book: this.book, network: c.network, clock: c.clock });
    this.agreement = new Agreement({
      libp2p: c.libp2p,
      key: c.key,
      network: c.network,
      snapshot: this.consensus.snapshot,
      sync: this.sync,
      rpc: c.rpc,
    });
    this.registration = new Registration({
      key: c.key,
      engine: c.engine,
      book: this.book,
      consensus: this.consensus,
    });
  }

  async start(): Promise<void> {
    await this.book.start();
    this.gossip.start();
    await this.sync.start();
    this.consensus.start();
    this.agreement.start();
    this.registration.start();
  }

  stop(): void {
    this.registration.stop();
    this.agreement.stop();
    this.consensus.stop();
    this.sync.stop();
    this.gossip.stop();
  }

  /** Test networks only: the faucet stakes `amount` rao on `hotkey` (a real signed stake.add record). */
  async faucetStake(hotkey: string, amount: bigint): Promise<void> {
    if (this.network.profile !== 'test')
      throw new NodeError('no-network', `${this.network.networkId} has no faucet; only test networks do.`);
    await this.book.publish('stake.add', { hotkey, amount: amount.toString() }, await faucetKey(this.network));
  }
}
