/**
 * Test fakes for the node core's services: only the components a service declares, and only the parts of them it
 * touches. Keys, records, stores, replays and network profiles in the tests stay real; these stand in for the
 * clock, the consensus engine's scheduling, libp2p's pubsub and the RPC transport.
 */
import type { PeerId, PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import type { NetworkConfig } from '../../shared/ledger/config.ts';
import type { UidSummary } from '../../shared/ledger/epoch.ts';
import { solveProofOfWork, type PowProgress } from '../../shared/ledger/pow.ts';
import { testProfile } from '../../shared/ledger/profiles.ts';
import { replay, type ClosedEpoch } from '../../shared/ledger/replay.ts';
import { snapshotOf, type LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import type { SubnetState, UidSlot } from '../../shared/ledger/state.ts';
import type { Json, Method } from '../../shared/p2p/rpc.ts';
import type { RpcRequest } from '../../shared/p2p/messages.ts';
import type { Clock, ConsensusEngine, LedgerStore, Libp2pNode, RegistrationPuzzle } from '../platform.ts';
import type { PeerView } from '../services/peers.ts';
import { RpcRouter, type CallOptions, type HandleOptions } from '../services/rpc.ts';
import { Store } from '../store.ts';
import type { StoredRecordRow } from '../../shared/ledger/db.ts';
import { checkpointIds } from '../../shared/ledger/finality.ts';
import { recordId, signRecord, type Body, type LedgerRecord, type RecordKind } from '../../shared/ledger/records.ts';
import type { StoredRecord } from '../../shared/ledger/replay.ts';
import type { RecordSource } from '../services/record-book.ts';
import type { CheckpointRecordSet } from '../services/sync.ts';

/** A clock that moves only when told to. */
export class FakeClock implements Clock {
  constructor(public ms: number) {}

  now(): number {
    return this.ms;
  }

  advance(ms: number): void {
    this.ms += ms;
  }
}

/** Genesis of the test networks below: a fixed date, so block numbers are the same on every run. */
export const GENESIS_MS = Date.UTC(2026, 0, 1);

/** The real test profile (1 s blocks, tempo 20, grace 3) and a fake clock standing at `block`. */
export function testNetwork(block = 100): { network: NetworkConfig; clock: FakeClock } {
  const network = testProfile(GENESIS_MS);
  return { network, clock: new FakeClock(GENESIS_MS + block * network.blockMs) };
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** Let every pending promise callback and zero-delay timer run. */
export const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * A consensus engine that replays a real store with the real replay (as the Node platform does), counts its
 * calls, and can be held (replays wait until released) or made to fail. Proofs of work are solved for real.
 */
export class FakeConsensusEngine implements ConsensusEngine {
  /** The `closeThrough` of every replay asked for, in order. */
  readonly replays: number[] = [];
  readonly puzzles: RegistrationPuzzle[] = [];
  /** Replays reject with this while set. */
  replayFailure: Error | null = null;
  /** Proofs of work reject with this while set. */
  powFailure: Error | null = null;
  private gate: Promise<void> | null = null;

  constructor(private readonly store: LedgerStore | null = null) {}

  /** Make replays wait until the returned function is called. */
  hold(): () => void {
    const gate = deferred();
    this.gate = gate.promise;
    return () => {
      this.gate = null;
      gate.resolve();
    };
  }

  async computeLedger(config: NetworkConfig, closeThrough: number): Promise<LedgerSnapshot> {
    this.replays.push(closeThrough);
    if (this.gate) await this.gate;
    if (this.replayFailure) throw this.replayFailure;
    const rows = (await this.store?.all()) ?? [];
    const base = (await this.store?.base()) ?? undefined;
    return snapshotOf(replay(config, rows, closeThrough, base), rows.length, closeThrough, 0);
  }

  async solveRegistration(puzzle: RegistrationPuzzle, onProgress?: (p: PowProgress) => void) {
    this.puzzles.push(puzzle);
    if (this.powFailure) throw this.powFailure;
    onProgress?.({ hashes: 1, expected: 2 ** puzzle.difficulty });
    return { ...(await solveProofOfWork(puzzle)), ms: 0 };
  }
}

/** Just enough of libp2p's gossipsub for a service that subscribes, publishes and listens to one topic. */
/**
 * A pubsub that delivers what a test hands it the way gossipsub does: through the topic's validator first (its
 * verdict is returned), with each rejection lowering the sender's score by gossipsub's P4 rule (weight times the
 * square of the count of rejections; no decay here).
 */
export class FakePubsub extends EventTarget {
  readonly topics: string[] = [];
  readonly published: { topic: string; data: Uint8Array }[] = [];
  readonly topicValidators = new Map<string, (peer: PeerId, message: { data: Uint8Array }) => Promise<string>>();
  readonly score = { params: { topics: {} as Record<string, { invalidMessageDeliveriesWeight: number }> } };
  readonly opts = { scoreThresholds: { graylistThreshold: -80 } };
  private readonly rejections = new Map<string, Map<string, number>>();

  subscribe(topic: string): void {
    this.topics.push(topic);
  }

  async publish(topic: string, data: Uint8Array) {
    this.published.push({ topic, data });
    return { recipients: [] };
  }

  getScore(peer: string): number {
    let score = 0;
    for (const [topic, count] of this.rejections.get(peer) ?? [])
      score += (this.score.params.topics[topic]?.invalidMessageDeliveriesWeight ?? 0) * count * count;
    return score;
  }

  /** A signed gossip message on `topic`, forwarded by `from`: the validator's verdict ('accept' without one). */
  async deliver(topic: string, data: Uint8Array, from: string): Promise<string> {
    const validator = this.topicValidators.get(topic);
    const verdict = validator ? await validator(peerIdFromString(from), { data }) : 'accept';
    if (verdict === 'reject') {
      const counts = this.rejections.get(from) ?? new Map<string, number>();
      counts.set(topic, (counts.get(topic) ?? 0) + 1);
      this.rejections.set(from, counts);
    }
    if (verdict === 'accept')
      this.dispatchEvent(new CustomEvent('message', { detail: { topic, type: 'signed', data, from } }));
    return verdict;
  }
}

/**
 * A libp2p node with a peer id and a pubsub service, and nothing else: a service touching more fails loudly.
 * Peers it hangs up on are listed in `hungUp`.
 */
export function fakeLibp2p(key: PrivateKey, pubsub: FakePubsub = new FakePubsub()): Libp2pNode & { hungUp: string[] } {
  const hungUp: string[] = [];
  return {
    peerId: peerIdFromPrivateKey(key),
    services: { pubsub },
    hungUp,
    hangUp: async (peer: PeerId) => void hungUp.push(peer.toString()),
  } as unknown as Libp2pNode & { hungUp: string[] };
}

export type Answer = (peer: string, request: RpcRequest, options: CallOptions) => Promise<Json>;

/**
 * The real RPC router (it signs requests with the real key and counts refusals) without a transport: `handle`
 * records the methods a service serves, and `exchangeFrames` hands the decoded request to `answer`.
 */
export class FakeRpcRouter extends RpcRouter {
  readonly served = new Map<string, { methods: Record<string, Method>; options: HandleOptions }>();
  answer: Answer = async (peer) => {
    throw new Error(`no route to ${peer}`);
  };

  constructor(key: PrivateKey, clock: Clock) {
    super({ libp2p: fakeLibp2p(key), key, clock });
  }

  override async handle(protocol: string, methods: Record<string, Method>, options: HandleOptions = {}) {
    this.served.set(protocol, { methods, options });
  }

  override async exchangeFrames(peer: string, frames: Uint8Array[], _id: string, options: CallOptions) {
    const request = JSON.parse(new TextDecoder().decode(frames[0])) as RpcRequest;
    return this.answer(peer, request, options);
  }
}

/** The peer table's two views (the store and `direct()`), with peers connected and dropped by hand. */
export class FakePeerTable {
  readonly peers = new Store<readonly PeerView[]>([]);

  constructor(direct: readonly string[] = []) {
    this.connect(...direct);
  }

  direct(): string[] {
    return this.peers
      .get()
      .filter((p) => p.direct)
      .map((p) => p.peerId);
  }

  /** Add direct connections to these peers. */
  connect(...peers: string[]): void {
    this.peers.set([...this.peers.get(), ...peers.map((peerId) => ({ peerId, direct: true, rttMs: 1 }))]);
  }

  disconnectAll(): void {
    this.peers.set([]);
  }
}

/** A UID slot as the ledger state holds it. */
export const uidSlot = (hotkey: string, role: UidSlot['role']): UidSlot => ({
  hotkey,
  role,
  registeredAt: 0,
  lastUpdate: 0,
});

/** One UID of a closed epoch; everything not given is zero. */
export function uidSummary(over: Partial<UidSummary> & Pick<UidSummary, 'uid' | 'hotkey'>): UidSummary {
  return {
    role: 'miner',
    stake: '0',
    validatorPermit: false,
    active: true,
    consensus: 0,
    incentive: 0,
    dividends: 0,
    validatorTrust: 0,
    emission: '0',
    dividendsRao: '0',
    take: '0',
    lastUpdate: 0,
    registeredAt: 0,
    ...over,
  };
}

/** A closed epoch of subnet `netuid`; roots default to all-zero and all-one hex. */
export function closedEpoch(over: Partial<ClosedEpoch> & Pick<ClosedEpoch, 'epoch' | 'uids'>): ClosedEpoch {
  return {
    netuid: 1,
    block: (over.epoch + 1) * 20,
    registrations: 0,
    burn: '0',
    difficulty: 0,
    amount: '0',
    ownerCut: '0',
    nominators: [],
    paid: '0',
    dust: '0',
    records: 0,
    recordsRoot: '0'.repeat(64),
    stateRoot: '1'.repeat(64),
    ...over,
  };
}

/** A subnet's state with these UIDs (index = uid) and nothing else. */
export const subnetWith = (netuid: number, uids: UidSlot[]): SubnetState => ({
  netuid,
  uids,
  weights: uids.map(() => null),
  commits: {},
  bonds: uids.map(() => []),
  lastEmission: uids.map(() => 0n),
  permits: uids.map(() => false),
  epoch: 0,
  burn: 0n,
  difficulty: 0,
  registrationsThisEpoch: 0,
  lastRegistration: { block: -1, count: 0 },
});

/** A replay's snapshot with the given subnets and closed epochs, and nothing else. */
export function snapshotWith(parts: { subnets?: SubnetState[]; epochs?: ClosedEpoch[] }): LedgerSnapshot {
  return {
    closeThrough: 0,
    records: 0,
    refused: {},
    epochs: parts.epochs ?? [],
    checkpoints: [],
    lastFinal: -1,
    lastVotedFinal: -1,
    frozen: {},
    balances: {},
    stakes: {},
    nominations: {},
    chains: {},
    subnets: parts.subnets ?? [],
    issued: 0n,
    dust: 0n,
    burned: 0n,
    ms: 0,
    chain: [],
    finalState: null,
    baseEpoch: -1,
  };
}

/**
 * Run `body` with the process's unhandled-rejection listeners (the test runner's among them) set aside for one
 * that records the reasons, and return those reasons: for code paths that may leave a rejected promise unhandled.
 */
export async function unhandledRejectionsDuring(body: () => Promise<void>): Promise<unknown[]> {
  const previous = process.rawListeners('unhandledRejection') as NodeJS.UnhandledRejectionListener[];
  const reasons: unknown[] = [];
  process.removeAllListeners('unhandledRejection');
  process.on('unhandledRejection', (reason) => reasons.push(reason));
  try {
    await body();
    // Node reports unhandled rejections once the microtask queue has drained.
    await settle();
    await settle();
  } finally {
    process.removeAllListeners('unhandledRejection');
    for (const listener of previous) process.on('unhandledRejection', listener);
  }
  return reasons;
}

/** A record as a store row (what `LedgerStore.all` returns), received from `source`. */
export function rowOf(r: StoredRecord, source = 'import', receivedAt = 0): StoredRecordRow {
  const { record, id } = r;
  return {
    id,
    network: record.network,
    block: record.block,
    author: record.author,
    kind: record.kind,
    record,
    source,
    receivedAt,
  };
}

/**
 * The record book's `self`, `network`, `publish` and `drop` over a real store: `publish` signs a real record with
 * `key` (the next sequence number of what the store holds by this key, at `block`) and stores it; `drop` deletes.
 * Calls go to `log` in order; `publishFailure`, while set, makes publish reject.
 */
export class FakeRecordBook {
  readonly self: string;
  readonly published: LedgerRecord[] = [];
  readonly dropped: string[][] = [];
  publishFailure: Error | null = null;

  constructor(
    private readonly key: PrivateKey,
    readonly network: NetworkConfig,
    private readonly store: LedgerStore,
    public block: number,
    readonly log: string[] = [],
  ) {
    this.self = peerIdFromPrivateKey(key).toString();
  }

  async publish<K extends RecordKind>(kind: K, body: Body<K>, block?: number): Promise<LedgerRecord> {
    this.log.push(`publish ${kind}`);
    if (this.publishFailure) throw this.publishFailure;
    const mine = await this.store.byAuthor(this.self);
    const record = (await signRecord(this.key, {
      v: 1,
      network: this.network.networkId,
      kind,
      author: this.self,
      seq: Math.max(0, ...mine.map((r) => r.record.seq)) + 1,
      block: block ?? this.block,
      body,
    } as never)) as LedgerRecord;
    await this.store.put([rowOf({ id: recordId(record), record }, 'self')]);
    this.published.push(record);
    return record;
  }

  async drop(ids: readonly string[]): Promise<void> {
    this.log.push(`drop ${ids.length}`);
    this.dropped.push([...ids]);
    await this.store.delete(ids);
  }
}

/** What a peer holding `records` (replayed through `closeThrough`) serves for `sync.checkpoint` of `epoch`. */
export function checkpointServed(
  config: NetworkConfig,
  records: readonly StoredRecord[],
  closeThrough: number,
  epoch: number,
): CheckpointRecordSet {
  const result = replay(config, records, closeThrough);
  const c = result.checkpoints.find((x) => x.epoch === epoch);
  if (!c) throw new Error(`epoch ${epoch} has not closed by block ${closeThrough}`);
  const ids = checkpointIds(config, records, result.refused, epoch);
  return { epoch, recordsRoot: c.recordsRoot, stateRoot: c.stateRoot, previous: c.previous, ids };
}

/**
 * Sync's `fetchCheckpoint` and `fetchRecords`, answered per peer from what the test says each one serves, every
 * call logged. `checkpoints` answers `sync.checkpoint` by epoch (throw for an error reply; a peer not in it has no
 * route); `fetchRecords` stores what the peer holds (`holdings`) of the ids into `store`, as the record book
 * would, and returns how many were new. `serve` makes a peer an honest holder of `records`.
 */
export class FakeSync {
  readonly checkpoints = new Map<string, (epoch: number) => CheckpointRecordSet | Promise<CheckpointRecordSet>>();
  readonly holdings = new Map<string, readonly StoredRecord[]>();
  readonly checkpointCalls: { peer: string; epoch: number }[] = [];
  readonly recordCalls: { peer: string; ids: string[]; source: RecordSource }[] = [];

  constructor(
    private readonly store: LedgerStore,
    readonly log: string[] = [],
  ) {}

  /** `peer` holds `records` and serves its checkpoints as a replay of them through `closeThrough` has them. */
  serve(peer: string, config: NetworkConfig, records: readonly StoredRecord[], closeThrough: number): void {
    this.checkpoints.set(peer, (epoch) => checkpointServed(config, records, closeThrough, epoch));
    this.holdings.set(peer, records);
  }

  async fetchCheckpoint(peer: string, epoch: number): Promise<CheckpointRecordSet> {
    this.log.push(`fetchCheckpoint ${peer} ${epoch}`);
    this.checkpointCalls.push({ peer, epoch });
    const answer = this.checkpoints.get(peer);
    if (!answer) throw new Error(`no route to ${peer}`);
    return structuredClone(await answer(epoch));
  }

  async fetchRecords(peer: string, ids: readonly string[], source: RecordSource): Promise<number> {
    this.log.push(`fetchRecords ${peer} ${ids.length} ${source}`);
    this.recordCalls.push({ peer, ids: [...ids], source });
    const wanted = new Set(ids);
    const served = (this.holdings.get(peer) ?? []).filter((r) => wanted.has(r.id));
    const held = await this.store.get(served.map((r) => r.id));
    const fresh = served.filter((_, k) => !held[k]);
    await this.store.put(fresh.map((r) => rowOf(r, source)));
    return fresh.length;
  }
}
