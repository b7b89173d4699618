/**
 * A modified client for attack tests: a real webtensor node on the Node platform (the project's own libp2p
 * stack, reached by tabs over its WebSocket listener), whose owner signs whatever it likes and pushes it past its
 * own checks: straight into its store (so its sync service serves it to anyone who asks) and onto the records
 * topic. It votes on no checkpoint unless told to. Only the wire protocol reaches the honest tabs.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import { clientConfig } from '../../core/config.ts';
import { MemoryLedgerStore } from '../../core/memory-ledger-store.ts';
import { WebtensorNode, type NodeServices } from '../../core/node.ts';
import { createNodePlatform } from '../../core/nodejs/platform.ts';
import { waitFor } from '../../core/store.ts';
import { proofCheckpoint, registrationPrice } from '../../core/services/registration.ts';
import { RECORDS_PER_AUTHOR_PER_BLOCK } from '../../shared/ledger/admission.ts';
import { epochBlocks } from '../../shared/ledger/config.ts';
import { finalThrough } from '../../shared/ledger/finality.ts';
import { uidOf, type LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { genesisHash } from '../../shared/ledger/state.ts';
import { solveProofOfWork } from '../../shared/ledger/pow.ts';
import {
  MAX_RECORD_BYTES,
  recordId,
  signRecord,
  type Body,
  type LedgerRecord,
  type RecordKind,
} from '../../shared/ledger/records.ts';
import { weightsCommitHash } from '../../shared/ledger/state.ts';
import { TOPICS } from '../../shared/names.ts';

type Reveal = Extract<LedgerRecord, { kind: 'weights.reveal' }>;

/** The junk a flood sends: each kind is something admission must keep out (docs/ledger.md, "Admission"). */
export type JunkKind =
  'unfunded-transfer' | 'unregistered-weights' | 'unowned-unstake' | 'stray-vote' | 'oversized' | 'over-quota';

export interface FloodReport {
  /** Messages published on the records topic, and deliveries (one message to two peers: two). */
  sent: number;
  delivered: number;
  ms: number;
  byKind: Record<JunkKind, number>;
  /** Records no honest node may store, with their authors. */
  junk: { id: string; author: string; kind: JunkKind }[];
  /**
   * Validly signed, funded faucet claims by one author in one block, more than admission's quota: at most
   * RECORDS_PER_AUTHOR_PER_BLOCK of each group may be stored.
   */
  overQuota: { author: string; block: number; ids: string[] }[];
}

/** One of the identities an adversary holds besides its own key: a key and its chain's next sequence number. */
export interface Sybil {
  key: PrivateKey;
  id: string;
  nextSeq: number;
}

/** A registration a sybil signed, and what the adversary's own replay made of it (null: not replayed yet). */
export interface RegistrationAttempt {
  id: string;
  author: string;
  seq: number;
  block: number;
  outcome: 'registered' | string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const encoder = new TextEncoder();

export class Adversary {
  private node: WebtensorNode | null = null;
  private services: NodeServices | null = null;
  readonly store = new MemoryLedgerStore();
  /** Connections to each remote peer that closed (whoever closed them), since start. */
  readonly closedConnections = new Map<string, number>();
  /** Connections opened with each remote peer since start, by who dialled: 'inbound' (the peer) or 'outbound'. */
  readonly openedConnections = new Map<string, { inbound: number; outbound: number }>();

  constructor(private readonly dataDir: string) {}

  async start(healthUrl: string): Promise<void> {
    const config = clientConfig({ healthUrl });
    this.node = new WebtensorNode(config, createNodePlatform({ dataDir: this.dataDir, store: this.store }));
    this.services = await this.node.start();
    this.ledger.finality.stop(); // it votes on nothing
    this.services.libp2p.addEventListener('connection:close', (e) => {
      const peer = e.detail.remotePeer.toString();
      this.closedConnections.set(peer, (this.closedConnections.get(peer) ?? 0) + 1);
    });
    this.services.libp2p.addEventListener('connection:open', (e) => {
      const peer = e.detail.remotePeer.toString();
      const opened = this.openedConnections.get(peer) ?? { inbound: 0, outbound: 0 };
      opened[e.detail.direction]++;
      this.openedConnections.set(peer, opened);
    });
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

  /**
   * A registration by a fresh key with a valid proof of work, and the faucet claim that funds its burn, both dated
   * `block`: funded, so that only the block's finality can refuse it (unfunded, it would fail as an overspend).
   */
  async backdatedRegistration(block: number): Promise<{ author: string; records: [LedgerRecord, LedgerRecord] }> {
    const key = await generateKeyPair('Ed25519');
    const author = peerIdFromPrivateKey(key).toString();
    const network = this.ledger.network;
    const { registrationDifficulty: difficulty, registration } = network.subnets[0]!;
    const maxClaim = BigInt(network.faucet!.maxClaim);
    const burn = (BigInt(registration.maxBurn) < maxClaim ? BigInt(registration.maxBurn) : maxClaim).toString();
    const checkpoint = genesisHash(network);
    const { nonce } = await solveProofOfWork({ network: network.networkId, netuid: 1, author, checkpoint, difficulty });
    const body = { netuid: 1, nonce, role: 'miner' as const, checkpoint, maxBurn: burn };
    const claim = await this.sign('faucet.claim', { amount: burn }, 1, block, key);
    return { author, records: [claim, await this.sign('register', body, 2, block, key)] };
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

  /**
   * Two different votes on the last closed epoch it is a voter of, as `seq` and `seq + 1`, dated now: one naming
   * its own replay's checkpoint, one naming made-up roots. The replay counts one vote per voter and epoch.
   */
  async doubleVote(seq: number, timeoutMs = 60_000): Promise<{ epoch: number; votes: [LedgerRecord, LedgerRecord] }> {
    const voterOf = (s: LedgerSnapshot | null) =>
      s?.checkpoints.filter((c) => c.hash !== '' && c.voters.includes(this.peerId)).at(-1);
    await waitFor(this.ledger.consensus.snapshot, (s) => voterOf(s) !== undefined, AbortSignal.timeout(timeoutMs));
    const c = voterOf(this.snapshot)!;
    const body = { epoch: c.epoch, recordsRoot: c.recordsRoot, stateRoot: c.stateRoot, previous: c.previous };
    const now = this.block;
    return {
      epoch: c.epoch,
      votes: [
        await this.sign('checkpoint', body, seq, now),
        await this.sign('checkpoint', { ...body, stateRoot: 'f'.repeat(64) }, seq + 1, now),
      ],
    };
  }

  private get topic(): string {
    return TOPICS.records(this.ledger.network.networkId);
  }

  private get snapshot(): LedgerSnapshot | null {
    return this.ledger.consensus.snapshot.get();
  }

  /** The current block by the network's clock. */
  get block(): number {
    return this.ledger.consensus.currentBlock();
  }

  /** The hotkeys holding UIDs on `netuid` in its own replay. */
  holders(netuid: number): string[] {
    return this.snapshot?.subnets.find((s) => s.netuid === netuid)?.uids.map((u) => u.hotkey) ?? [];
  }

  /** Stop replaying its own store (a flooder does not care what its ledger says, and keeps the CPU). */
  stopReplays(): void {
    this.ledger.consensus.stop();
  }

  /** Which of `peers` it holds an open connection to now. */
  connectedTo(peers: readonly string[]): string[] {
    const libp2p = this.services!.libp2p;
    return peers.filter((p) => libp2p.getConnections(peerIdFromString(p)).length > 0);
  }

  /** Which of `peers` its gossipsub knows to be subscribed to the records topic (it publishes to those). */
  subscribersAmong(peers: readonly string[]): string[] {
    const subscribers = new Set(
      this.services!.libp2p.services.pubsub.getSubscribers(this.topic).map((p) => p.toString()),
    );
    return peers.filter((p) => subscribers.has(p));
  }

  /** Put records in its own store, unchecked (its sync serves them). */
  private async keep(records: readonly LedgerRecord[]): Promise<string[]> {
    const rows = records.map((record) => {
      const { network, block, author, kind } = record;
      return { id: recordId(record), network, block, author, kind, record, source: 'self' as const };
    });
    await this.store.put(rows.map((r) => ({ ...r, receivedAt: Date.now() })));
    return rows.map((r) => r.id);
  }

  /** Gossip one record raw (its own record book would refuse it); resolves with how many peers it went to. */
  private async gossip(record: LedgerRecord): Promise<number> {
    const result = await this.services!.libp2p.services.pubsub.publish(
      this.topic,
      encoder.encode(JSON.stringify(record)),
    ).catch(() => null);
    return result?.recipients.length ?? 0;
  }

  /**
   * One round of junk dated `block`, every record validly signed by a fresh key: unfunded transfers, weights
   * from unregistered keys, unstakes of stake the author does not have, checkpoint votes from non-voters (on a
   * recent, a settled and a future epoch), a record over MAX_RECORD_BYTES, and
   * RECORDS_PER_AUTHOR_PER_BLOCK + 4 funded faucet claims by one author in the one block.
   */
  private async junkRound(block: number): Promise<{ kind: JunkKind; record: LedgerRecord }[]> {
    const fresh = () => generateKeyPair('Ed25519');
    const out: { kind: JunkKind; record: LedgerRecord }[] = [];
    const somebody = await this.newKey();
    for (let k = 0; k < 5; k++)
      out.push({
        kind: 'unfunded-transfer',
        record: await this.sign('transfer', { to: somebody, amount: '1000000000' }, 1, block, await fresh()),
      });
    const salt = '5a175a175a175a175a175a175a175a17';
    const weights: [RecordKind, Body<'weights.set'> | Body<'weights.commit'> | Body<'weights.reveal'>][] = [
      ['weights.set', { netuid: 1, uids: [0, 1], values: [65535, 1] }],
      ['weights.commit', { netuid: 1, hash: 'ab'.repeat(32) }],
      ['weights.reveal', { netuid: 1, uids: [0], values: [65535], salt }],
      ['weights.set', { netuid: 1, uids: [0], values: [65535] }],
    ];
    for (const [kind, body] of weights)
      out.push({ kind: 'unregistered-weights', record: await this.sign(kind, body as never, 1, block, await fresh()) });
    for (let k = 0; k < 4; k++)
      out.push({
        kind: 'unowned-unstake',
        record: await this.sign('stake.remove', { hotkey: somebody, amount: '1000000000' }, 1, block, await fresh()),
      });
    // Checkpoint votes from keys that hold no permit: on the last closed epoch (plausible, but not a voter), on
    // genesis (long settled) and on an epoch far ahead (not closed anywhere). Roots are random: a vote is refused
    // for who signs it and when, before anyone compares roots.
    const closed = Math.floor(block / epochBlocks(this.ledger.network)) - 1;
    for (const epoch of [Math.max(0, closed), 0, closed + 50]) {
      const root = () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('hex');
      const body = { epoch, recordsRoot: root(), stateRoot: root(), previous: root() };
      out.push({ kind: 'stray-vote', record: await this.sign('checkpoint', body, 1, block, await fresh()) });
    }
    // A transfer with a memo that takes it over the bound: validly signed (the memo is signed too), too large.
    const memo = 'x'.repeat(MAX_RECORD_BYTES + 1024);
    out.push({
      kind: 'oversized',
      record: await this.sign('transfer', { to: somebody, amount: '1', memo } as never, 1, block, await fresh()),
    });
    const greedy = await fresh();
    for (let seq = 1; seq <= RECORDS_PER_AUTHOR_PER_BLOCK + 4; seq++)
      out.push({ kind: 'over-quota', record: await this.sign('faucet.claim', { amount: '1' }, seq, block, greedy) });
    return out;
  }

  /**
   * Flood the records topic with validly signed junk for `durationMs`, as fast as it can: each round is signed
   * for the current block (so no receiver can put it down to a slow clock), kept in its own store (its sync
   * offers it) and published raw on gossipsub.
   */
  async flood(durationMs: number): Promise<FloodReport> {
    const report: FloodReport = {
      sent: 0,
      delivered: 0,
      ms: 0,
      byKind: {
        'unfunded-transfer': 0,
        'unregistered-weights': 0,
        'unowned-unstake': 0,
        'stray-vote': 0,
        oversized: 0,
        'over-quota': 0,
      },
      junk: [],
      overQuota: [],
    };
    const start = Date.now();
    while (Date.now() - start < durationMs) {
      const block = this.block;
      const round = await this.junkRound(block);
      const ids = await this.keep(round.map((j) => j.record));
      const counts = await Promise.all(round.map((j) => this.gossip(j.record)));
      const quota: string[] = [];
      round.forEach(({ kind, record }, k) => {
        report.sent++;
        report.delivered += counts[k]!;
        report.byKind[kind]++;
        if (kind === 'over-quota') quota.push(ids[k]!);
        else report.junk.push({ id: ids[k]!, author: record.author, kind });
      });
      const greedy = round.find((j) => j.kind === 'over-quota')!.record.author;
      report.overQuota.push({ author: greedy, block, ids: quota });
      // Let its connections breathe (and whoever shares its process): a flood that starves its own I/O floods nobody.
      await new Promise((r) => setImmediate(r));
    }
    report.ms = Date.now() - start;
    return report;
  }

  /** `count` more identities: fresh keys whose chains start at sequence 1. */
  async sybils(count: number): Promise<Sybil[]> {
    const out: Sybil[] = [];
    for (let k = 0; k < count; k++) {
      const key = await generateKeyPair('Ed25519');
      out.push({ key, id: peerIdFromPrivateKey(key).toString(), nextSeq: 1 });
    }
    return out;
  }

  /** A record signed by `sybil` with its next sequence number, dated `block`, stored and gossiped. */
  async signAs<K extends RecordKind>(sybil: Sybil, kind: K, body: Body<K>, block = this.block): Promise<LedgerRecord> {
    const record = await this.sign(kind, body, sybil.nextSeq++, block, sybil.key);
    await this.inject(record);
    return record;
  }

  /** Each sybil claims `amount` rao from the faucet with its own signed record; resolves once its replay has them. */
  async fund(sybils: readonly Sybil[], amount: bigint, timeoutMs: number): Promise<void> {
    for (const s of sybils) await this.signAs(s, 'faucet.claim', { amount: amount.toString() });
    // Injected records skip its record book, so nothing tells its replay they came: replay now.
    await this.ledger.consensus.replayNow();
    await waitFor(
      this.ledger.consensus.snapshot,
      (snap) => sybils.every((s) => (snap?.balances[s.id] ?? 0n) >= amount),
      AbortSignal.timeout(timeoutMs),
    );
  }

  /**
   * Register `sybils` on `netuid` as fast as the rules let it: at every block, `perBlock` registrations (each
   * by a sybil that holds no UID yet and has none waiting for its replay) with a proof of work at the price its
   * own replay shows (one bit more, in case an epoch closes first) bound to the checkpoint registration uses,
   * offering the subnet's maxBurn. A refused one is tried again at a later block with its next sequence number.
   * Stops once every sybil was taken once (its own replay), or at `deadline`.
   */
  async registerAll(
    sybils: readonly Sybil[],
    netuid: number,
    perBlock: number,
    deadline: number,
  ): Promise<RegistrationAttempt[]> {
    const network = this.ledger.network;
    const cfg = network.subnets.find((s) => s.netuid === netuid)!;
    const attempts: RegistrationAttempt[] = [];
    const waiting = new Map<string, RegistrationAttempt>();
    const taken = new Set<string>();
    let lastBlock = -1;
    while (taken.size < sybils.length && Date.now() < deadline) {
      // Injected records skip its record book, so nothing tells its replay they came: replay now.
      if (waiting.size > 0) await this.ledger.consensus.replayNow().catch(() => null);
      const snapshot = this.snapshot;
      for (const [author, a] of waiting) {
        if ((snapshot?.chains[author]?.seq ?? 0) < a.seq) continue;
        waiting.delete(author);
        a.outcome = snapshot!.refused[a.id]?.code ?? 'registered';
        if (a.outcome === 'registered') taken.add(author);
      }
      const block = this.block;
      if (block === lastBlock) {
        await sleep(100);
        continue;
      }
      lastBlock = block;
      const price = registrationPrice(snapshot, netuid);
      const difficulty = Math.min(
        cfg.registration.maxDifficulty,
        (price?.difficulty ?? cfg.registrationDifficulty) + 1,
      );
      const checkpoint = proofCheckpoint(network, snapshot, block);
      if (!checkpoint) continue;
      const ready = sybils.filter((s) => !taken.has(s.id) && !waiting.has(s.id)).slice(0, perBlock);
      for (const sybil of ready) {
        const puzzle = { network: network.networkId, netuid, author: sybil.id, checkpoint, difficulty };
        const { nonce } = await solveProofOfWork(puzzle);
        const body = { netuid, nonce, role: 'miner' as const, checkpoint, maxBurn: cfg.registration.maxBurn };
        const record = await this.signAs(sybil, 'register', body, block);
        const attempt = { id: recordId(record), author: sybil.id, seq: record.seq, block, outcome: null };
        attempts.push(attempt);
        waiting.set(sybil.id, attempt);
      }
    }
    return attempts;
  }
}
