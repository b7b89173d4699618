/**
 * A modified client for attack tests: a real webtensor node on the Node platform (the project's own libp2p
 * stack, reached by tabs over its WebSocket listener), whose owner signs whatever it likes and pushes it past its
 * own checks: straight into its store (so its sync service serves it to anyone who asks) and onto the records
 * topic. It votes on no checkpoint. Only the wire protocol reaches the honest tabs.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { clientConfig } from '../../core/config.ts';
import { MemoryLedgerStore } from '../../core/memory-ledger-store.ts';
import { WebtensorNode, type NodeServices } from '../../core/node.ts';
import { createNodePlatform } from '../../core/nodejs/platform.ts';
import { waitFor } from '../../core/store.ts';
import { finalThrough } from '../../shared/ledger/finality.ts';
import { uidOf, type LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { genesisHash } from '../../shared/ledger/state.ts';
import { solveProofOfWork } from '../../shared/ledger/pow.ts';
import { recordId, signRecord, type Body, type LedgerRecord, type RecordKind } from '../../shared/ledger/records.ts';
import { weightsCommitHash } from '../../shared/ledger/state.ts';
import { TOPICS } from '../../shared/names.ts';

type Reveal = Extract<LedgerRecord, { kind: 'weights.reveal' }>;

export class Adversary {
  private node: WebtensorNode | null = null;
  private services: NodeServices | null = null;
  readonly store = new MemoryLedgerStore();

  constructor(private readonly dataDir: string) {}

  async start(healthUrl: string): Promise<void> {
    const config = clientConfig({ healthUrl });
    this.node = new WebtensorNode(config, createNodePlatform({ dataDir: this.dataDir, store: this.store }));
    this.services = await this.node.start();
    this.ledger.finality.stop(); // it votes on nothing
  }

  async stop(): Promise<void> {
    await this.node?.stop();
  }

  private get ledger() {
    const ledger = this.services?.ledger;
    if (!ledger) throw new Error('the adversary has no ledger (start it first, on a relay with a network)');
    return ledger;
  }

  get peerId(): string {
    return this.services!.peerId;
  }

  private get key(): PrivateKey {
    return this.services!.key;
  }

  /** Register as a validator the honest way, draw `stake + spendable` from the faucet and stake `stake` on itself. */
  async registerAsValidator(stake: bigint, spendable: bigint): Promise<void> {
    const ledger = this.ledger;
    await ledger.registration.ensureRegistered(1, 'validator');
    // Registering drew up to twice the price from the faucet and burnt the price: stake what is left of it too,
    // so that exactly `spendable` stays free.
    const registered = (s: LedgerSnapshot | null) => uidOf(s, 1, this.peerId) !== null;
    await waitFor(ledger.consensus.snapshot, registered, AbortSignal.timeout(60_000));
    const leftover = ledger.consensus.snapshot.get()!.balances[this.peerId] ?? 0n;
    await ledger.book.publish('faucet.claim', { amount: (stake + spendable).toString() });
    await ledger.book.publish('stake.add', { hotkey: this.peerId, amount: (stake + leftover).toString() });
  }

  /** Publish a record the honest way (its own checks, the next sequence number, the current block). */
  publish<K extends RecordKind>(kind: K, body: Body<K>): Promise<LedgerRecord> {
    return this.ledger.book.publish(kind, body);
  }

  /** Sign anything: any sequence number, any block. */
  sign<K extends RecordKind>(
    kind: K,
    body: Body<K>,
    seq: number,
    block: number,
    key = this.key,
  ): Promise<LedgerRecord> {
    const author = peerIdFromPrivateKey(key).toString();
    const network = this.ledger.network.networkId;
    return signRecord(key, { v: 1, network, kind, author, seq, block, body } as never);
  }

  /** Put a record in its own store, unchecked (its sync serves it), and gossip it to everyone. */
  async inject(record: LedgerRecord): Promise<void> {
    const id = recordId(record);
    const { network, block, author, kind } = record;
    await this.store.put([{ id, network, block, author, kind, record, source: 'self', receivedAt: Date.now() }]);
    await this.services!.libp2p.services.pubsub.publish(
      TOPICS.records(network),
      new TextEncoder().encode(JSON.stringify(record)),
    ).catch(() => {});
  }

  async newKey(): Promise<string> {
    return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
  }

  /** The first block after the last epoch final by votes, in its own replay. */
  finalThrough(): number {
    return finalThrough(this.ledger.network, this.ledger.consensus.snapshot.get()?.lastVotedFinal ?? -1);
  }

  /** Wait until its own replay holds `epoch` final by votes. */
  async waitFinal(epoch: number, timeoutMs: number): Promise<void> {
    await waitFor(
      this.ledger.consensus.snapshot,
      (s) => (s?.lastVotedFinal ?? -1) >= epoch,
      AbortSignal.timeout(timeoutMs),
    );
  }

  /** A registration by a fresh key with a valid proof of work, dated `block`. */
  async backdatedRegistration(block: number): Promise<LedgerRecord> {
    const key = await generateKeyPair('Ed25519');
    const author = peerIdFromPrivateKey(key).toString();
    const network = this.ledger.network;
    const { registrationDifficulty: difficulty, registration } = network.subnets[0]!;
    const checkpoint = genesisHash(network);
    const { nonce } = await solveProofOfWork({ network: network.networkId, netuid: 1, author, checkpoint, difficulty });
    const body = { netuid: 1, nonce, role: 'miner' as const, checkpoint, maxBurn: registration.maxBurn };
    return this.sign('register', body, 1, block, key);
  }

  /** Wait for `validator`'s next reveal to reach its store. */
  async waitForReveal(validator: string, timeoutMs: number): Promise<Reveal> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const reveal = (await this.store.byAuthor(validator)).find((r) => r.kind === 'weights.reveal');
      if (reveal) return reveal.record as Reveal;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`no reveal from ${validator} within ${timeoutMs} ms`);
  }

  /** A commit of the revealed weights dated `commitBlock`, and its reveal now, as sequence `seq` and `seq + 1`. */
  async copyWeights(reveal: Reveal, commitBlock: number, seq: number): Promise<[LedgerRecord, LedgerRecord]> {
    const salt = 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0';
    const { netuid, uids, values } = reveal.body;
    const hash = weightsCommitHash({ netuid, uids, values, salt });
    const now = this.ledger.consensus.currentBlock();
    return [
      await this.sign('weights.commit', { netuid, hash }, seq, commitBlock),
      await this.sign('weights.reveal', { netuid, uids, values, salt }, seq + 1, now),
    ];
  }
}
