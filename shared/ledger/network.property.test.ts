/**
 * A small deterministic network simulator for the finality rules (docs/ledger.md, "Finality"), driven by
 * fast-check: honest nodes that receive the same records in different orders, at different times and across
 * partitions, with an adversary that backdates, equivocates and replays, must reach the same final checkpoints,
 * and no final epoch may change.
 *
 * The network (signed once, in beforeAll, with keys derived from fixed seeds so every run is reproducible): the
 * test profile (`smallConfig()`, tempo 20) with a full subnet of 5 UIDs; validators v1, v2, v3 register at blocks
 * 1-3, claim and stake 4000, 4000 and 2000 τ at 6-7 (permits from epoch 1 on); miners m1, m2 register at 4-5; the
 * adversary A claims 600 rao at 8 and pays them to X at 25. Simulated: blocks 0..END (epochs 0-3 close and are
 * voted), then everything in flight arrives and everyone syncs until nothing changes.
 *
 * Five honest nodes (v1, v2, v3, m1, m2), each with its own record set and clock (offset -1..1 block). Each node
 * does what the node core does with the shared rules:
 *
 * - arrival (RecordBook.accept): `checkRecord` with `arrivalContext(config, now, lastVotedFinal of its last
 *   replay, via)`: `gossip` when the record comes within GOSSIP_DELAY blocks, `sync` when later or when a
 *   partition heals; its own records as `self`;
 * - replay (Consensus): when it stored something or an epoch boundary passed, `closeThrough = now − grace`;
 * - a validator (Validator): commits its fixed weights in the first half of an epoch if its replay gives it a
 *   permit, and reveals them in the next epoch once its replay shows the commit's epoch final;
 * - Finality.follow after each replay: remember the record set of each epoch final by votes and repair the store
 *   when that epoch's checkpoint changed; adopt the oldest checkpoint another hash outvoted (more than 2/3 of the
 *   permitted stake): ask that hash's voters for it (a voter serves its remembered set, else its current
 *   `checkpointIds`), check hash and recordsRoot, follow `previous` back to the first epoch both agree on, fetch
 *   what is missing (adopt path: `minBlock` 0) and drop the rest with `adoption()`; a validator votes, from its
 *   own replay, on every closed non-final checkpoint it may vote on, before the lost one if any;
 * - RecordBook.publish / drop: the next sequence number; after a drop, the chain continues after the last held.
 *
 * fast-check chooses the clock offsets, each record's delay to each node (1..GOSSIP_DELAY, or late: 3..40 blocks,
 * by sync), each node's order of simultaneous arrivals, up to two partitions (blocks during which some nodes
 * receive and send nothing; a sync of everything the reachable nodes hold when one heals), and up to 12
 * adversary sends: one of the pre-signed attacks below, to a subset of nodes, at a block (any, or just after an
 * epoch's close), by gossip or sync.
 *
 * Left out: transport, RPC and the sync protocol itself (a delivery is a call; a sync hands over everything the
 * reachable honest nodes hold, not one peer's buckets), refusal counting, storage or signing failures, restarts,
 * the validators' challenges and scores (their weights are fixed), nominators, more than one subnet, clocks that
 * drift, and votes by the adversary (it holds no permit).
 */
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { epochBlocks, type NetworkConfig } from './config.ts';
import { adoption, arrivalContext, checkpointIds, recordsRootOf } from './finality.ts';
import { checkRecord, RecordRefused, type Body, type RecordKind } from './records.ts';
import { replay, type CheckpointView, type Replay, type StoredRecord } from './replay.ts';
import { checkpointHash, uidOf, weightsCommitHash } from './state.ts';
import { actor, claim, make, registration, smallConfig, type Actor } from './testing.ts';

// A full subnet (5 UIDs, as finding 3 in finality.test.ts): a registration takes the UID of the oldest
// non-immune registration while emissions tie, so backdated registrations reach the validators' permits.
const base = smallConfig();
const config: NetworkConfig = smallConfig({
  subnets: base.subnets.map((s) => ({ ...s, maxUids: 5, immunityPeriod: 5 })),
});
const T = epochBlocks(config); // 20
const NETUID = 1;
/** The last block simulated; then everything still in flight is delivered and everyone syncs. */
const END = 4 * T + 12; // epochs 0..3 closed and voted, reveals of epoch 2 done
const NODE_NAMES = ['v1', 'v2', 'v3', 'm1', 'm2'] as const;
const NODES = NODE_NAMES.length;
const VALIDATORS = 3;
const STAKES = [4_000_000_000_000n, 4_000_000_000_000n, 2_000_000_000_000n]; // v1 + v2 alone make 2/3
const WEIGHTS = [
  [40000, 20000],
  [20000, 40000],
  [30000, 30000],
];
const PAYMENT = 600n;
/** Delivery slots: the static records, then 16 per validator for the records it signs as it goes. */
const STATIC_SLOTS = 13;
const SLOTS = STATIC_SLOTS + VALIDATORS * 16;
/** Deliveries up to this many blocks after signing come by gossip (window: 5 blocks, clocks differ by up to 2). */
const GOSSIP_DELAY = 2;
/** Indices into Fixture.attacks (checked in beforeAll). */
const ATTACKS = 14;
const TWIN = 0;
const REGISTER_12 = 7;
const REGISTER_17 = 8;

const saltOf = (v: number, epoch: number) => `${v}${epoch}`.padStart(32, '0');

interface Fixture {
  validators: Actor[];
  miners: Actor[];
  adversary: Actor;
  /** The honest recipient of the adversary's payment. */
  x: Actor;
  /** Records signed before the run, by block: their author's node index, or -1 for the adversary's public chain. */
  statics: { rec: StoredRecord; author: number }[];
  payX: StoredRecord;
  /** What the adversary can send: each record and the first block it may send it. */
  attacks: { name: string; rec: StoredRecord; earliest: number }[];
}

async function seededActor(name: string): Promise<Actor> {
  const seed = sha256(new TextEncoder().encode(`webtensor network simulation/${name}`));
  return actor(await generateKeyPairFromSeed('Ed25519', seed));
}

async function buildFixture(): Promise<Fixture> {
  const validators = await Promise.all([0, 1, 2].map((k) => seededActor(`validator ${k}`)));
  const miners = await Promise.all([0, 1].map((k) => seededActor(`miner ${k}`)));
  const adversary = await seededActor('adversary');
  const [x, y, z] = (await Promise.all(['x', 'y', 'z'].map(seededActor))) as [Actor, Actor, Actor];
  const registrants = await Promise.all([0, 1, 2, 3].map((k) => seededActor(`registrant ${k}`)));
  const statics: Fixture['statics'] = [];
  // Epoch 0: the validators register first (blocks 1-3), then the miners (4-5); the validators claim and stake
  // (permits from epoch 1 on); the adversary claims what it will pay.
  for (const [k, v] of validators.entries())
    statics.push({ rec: await registration(config, v, 1 + k, 'validator'), author: k });
  for (const [k, m] of miners.entries())
    statics.push({ rec: await registration(config, m, 4 + k, 'miner'), author: VALIDATORS + k });
  for (const [k, v] of validators.entries()) statics.push({ rec: await claim(config, v, 6, STAKES[k]!), author: k });
  for (const [k, v] of validators.entries())
    statics.push({
      rec: await make(config, v, 'stake.add', 7, { hotkey: v.id, amount: STAKES[k]!.toString() }),
      author: k,
    });
  statics.push({ rec: await claim(config, adversary, 8, PAYMENT), author: -1 });
  const payX = await make(config, adversary, 'transfer', 25, { to: x.id, amount: PAYMENT.toString() }, 2);
  statics.push({ rec: payX, author: -1 });
  expect(statics.length).toBe(STATIC_SLOTS);

  const pay = (seq: number, block: number, to: Actor, amount: bigint) =>
    make(config, adversary, 'transfer', block, { to: to.id, amount: amount.toString() }, seq);
  const copied = { netuid: NETUID, uids: [3, 4], values: WEIGHTS[0]!, salt: saltOf(0, 2) };
  const copiedHash = weightsCommitHash(copied);
  const attacks: Fixture['attacks'] = [
    // A twin of the payment to X, dated before it, sent once epoch 1 may be final.
    { name: 'backdated twin of the payment', rec: await pay(2, 24, y, PAYMENT), earliest: 26 },
    // Dated before its author's chain head (block 25).
    { name: 'transfer dated before the chain head', rec: await pay(3, 22, y, PAYMENT), earliest: 26 },
    // An equivocation in an open epoch, and a record after it.
    { name: 'equivocation, pay Y', rec: await pay(3, 50, y, 300n), earliest: 50 },
    { name: 'equivocation, pay Z', rec: await pay(3, 50, z, 300n), earliest: 50 },
    { name: 'after the equivocation', rec: await pay(4, 51, y, 300n), earliest: 51 },
    // v1's epoch-2 weights, committed in epoch 2's first half once v1 revealed them (block 71), and revealed.
    {
      name: 'backdated commit of copied weights',
      rec: await make(config, adversary, 'weights.commit', 2 * T + 2, { netuid: NETUID, hash: copiedHash }, 3),
      earliest: 3 * T + 11,
    },
    {
      name: 'reveal of the copied weights',
      rec: await make(config, adversary, 'weights.reveal', 3 * T + 12, copied, 4),
      earliest: 3 * T + 12,
    },
    // Registrations dated in the voter-less epoch 0 and in later epochs, each of another key.
    { name: 'register dated 12', rec: await registration(config, registrants[0]!, 12, 'miner'), earliest: 13 },
    { name: 'register dated 17', rec: await registration(config, registrants[1]!, 17, 'miner'), earliest: 18 },
    { name: 'register dated 33', rec: await registration(config, registrants[2]!, 33, 'miner'), earliest: 34 },
    { name: 'register dated 57', rec: await registration(config, registrants[3]!, 57, 'miner'), earliest: 58 },
    // Replays of old records.
    { name: 'replay of the payment', rec: payX, earliest: 26 },
    { name: "replay of v1's stake", rec: statics[8]!.rec, earliest: 8 },
    { name: "replay of m1's registration", rec: statics[3]!.rec, earliest: 5 },
  ];
  return { validators, miners, adversary, x, statics, payX, attacks };
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios: what fast-check chooses.

interface Scenario {
  /** Each node's clock minus the network's, in blocks. */
  offsets: number[];
  /** Seeds the delay (1..GOSSIP_DELAY blocks) of each record to each node. */
  jitter: number;
  /** Deliveries that come late instead (they arrive by sync). */
  late: { slot: number; node: number; delay: number }[];
  /** Seeds each node's order of the deliveries that arrive in the same block. */
  order: number[];
  /** Blocks [start, start + len) during which `nodes` receive and send nothing. */
  partitions: { nodes: number[]; start: number; len: number }[];
  /** The adversary sends attack `rec` to `nodes` at block `at` (at the earliest when that attack allows). */
  attacks: { rec: number; nodes: number[]; at: number; via: 'gossip' | 'sync' }[];
}

/**
 * Scenarios; `bootstrapSafe`: every record of epoch 0 reaches every node on time (no late delivery of it, no
 * partition before epoch 1, no registration dated in epoch 0); `honest`: no adversary.
 */
function scenarioArb(opts: { bootstrapSafe?: boolean; honest?: boolean } = {}): fc.Arbitrary<Scenario> {
  const rec = opts.bootstrapSafe
    ? fc.nat(ATTACKS - 1).filter((k) => k !== REGISTER_12 && k !== REGISTER_17)
    : fc.nat(ATTACKS - 1);
  const firstSlot = opts.bootstrapSafe ? 12 : 0; // static slots 0-11 are the records of epoch 0
  const firstStart = opts.bootstrapSafe ? T : 0;
  return fc.record({
    offsets: fc.array(fc.integer({ min: -1, max: 1 }), { minLength: NODES, maxLength: NODES }),
    jitter: fc.nat(),
    late: fc.array(
      fc.record({
        slot: fc.integer({ min: firstSlot, max: SLOTS - 1 }),
        node: fc.nat(NODES - 1),
        delay: fc.integer({ min: 3, max: 40 }),
      }),
      { maxLength: 25 },
    ),
    order: fc.array(fc.nat(), { minLength: NODES, maxLength: NODES }),
    partitions: fc.array(
      fc.record({
        nodes: fc.subarray([0, 1, 2, 3, 4], { minLength: 1, maxLength: 3 }),
        start: fc.integer({ min: firstStart, max: END }),
        len: fc.integer({ min: 1, max: 30 }),
      }),
      { maxLength: 2 },
    ),
    attacks: fc.array(
      fc.record({
        rec,
        nodes: fc.subarray([0, 1, 2, 3, 4], { minLength: 1 }),
        // Any block, or just after an epoch's close (while its votes are signed and travel).
        at: fc.oneof(
          fc.integer({ min: 0, max: END }),
          fc.tuple(fc.integer({ min: 1, max: 4 }), fc.nat(6)).map(([e, k]) => e * T + k),
        ),
        via: fc.constantFrom('gossip' as const, 'sync' as const),
      }),
      { maxLength: opts.honest ? 0 : 12 },
    ),
  });
}

/** A small deterministic hash to 32 bits. */
function mix(...xs: (number | string)[]): number {
  let h = 2166136261;
  for (const x of xs) {
    const s = String(x);
    for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 16777619);
    h = Math.imul(h ^ 0x7c, 16777619);
  }
  return h >>> 0;
}

// ---------------------------------------------------------------------------------------------------------------
// The simulator.

type Via = 'gossip' | 'sync';

interface Delivery {
  node: number;
  rec: StoredRecord;
  via: Via;
  attack?: boolean;
}

interface FinalSet {
  epoch: number;
  hash: string;
  recordsRoot: string;
  stateRoot: string;
  previous: string;
  ids: string[];
}

interface SimNode {
  i: number;
  name: string;
  id: string;
  validator: Actor | null;
  store: Map<string, StoredRecord>;
  version: number;
  view: Replay;
  viewEpoch: number;
  dirty: boolean;
  nextSeq: number;
  published: Set<number>;
  voting: Set<number>;
  committed: Map<number, { uids: number[]; values: number[]; salt: string }>;
  revealed: Set<number>;
  /** FinalRecordSets: the record set of each epoch as it first became final by votes here. */
  finalSets: Map<number, FinalSet>;
  /** Each epoch's hash when this node first saw it final by votes (epoch ≤ lastVotedFinal). */
  voteFinal: Map<number, string>;
  /** Each epoch's hash when this node first reported it final (CheckpointView.final, voter-less epochs too). */
  anyFinal: Map<number, string>;
  /** X's balance when epoch 1 (which holds the payment to X) was first final by votes here. */
  xAtFinal: bigint | null;
}

interface Outcome {
  /** Property 1 (end): differences between the nodes' final checkpoints or lastFinal. */
  disagreement: string[];
  /** Property 2: a node's checkpoint of an epoch final by votes changed, or the epoch stopped being final. */
  voteFinalChanged: string[];
  /** Property 2, literally: the same for every epoch a node reported final, voter-less epoch 0 included. */
  anyFinalChanged: string[];
  /** Property 3: X's balance changed after the epoch holding its payment was final by votes. */
  paymentUndone: string[];
  lastFinal: number[];
  /** X's balance at the end on each node. */
  xBalance: bigint[];
  /** Coverage: adoptions, repairs of a final epoch's set, replays, attacks stored, refusals on arrival. */
  adoptions: number;
  repairs: number;
  replays: number;
  attacksStored: number;
  refusals: Record<string, number>;
}

const signed = new Map<string, Promise<StoredRecord>>();

/** Sign (once per run of the file: keys and records are deterministic) a validator's record. */
function signOnce<K extends RecordKind>(
  who: Actor,
  kind: K,
  block: number,
  body: Body<K>,
  seq: number,
): Promise<StoredRecord> {
  const key = `${who.id}|${kind}|${seq}|${block}|${JSON.stringify(body)}`;
  let p = signed.get(key);
  if (!p) signed.set(key, (p = make(config, who, kind, block, body, seq)));
  return p;
}

function outvotedBy(c: CheckpointView): CheckpointView['otherVotes'][number] | null {
  const permitted = BigInt(c.permittedStake);
  return c.otherVotes.find((o) => BigInt(o.stake) * 3n > permitted * 2n) ?? null;
}

async function simulate(fx: Fixture, s: Scenario): Promise<Outcome> {
  const out: Outcome = {
    disagreement: [],
    voteFinalChanged: [],
    anyFinalChanged: [],
    paymentUndone: [],
    lastFinal: [],
    xBalance: [],
    adoptions: 0,
    repairs: 0,
    replays: 0,
    attacksStored: 0,
    refusals: {},
  };
  const ids = [...fx.validators.map((v) => v.id), ...fx.miners.map((m) => m.id)];
  const empty = replay(config, [], 0);
  const nodes: SimNode[] = NODE_NAMES.map((name, i) => ({
    i,
    name,
    id: ids[i]!,
    validator: i < VALIDATORS ? fx.validators[i]! : null,
    store: new Map(),
    version: 0,
    view: empty,
    viewEpoch: -1,
    dirty: true,
    nextSeq: 4, // after register, claim and stake.add
    published: new Set(),
    voting: new Set(),
    committed: new Map(),
    revealed: new Set(),
    finalSets: new Map(),
    voteFinal: new Map(),
    anyFinal: new Map(),
    xAtFinal: null,
  }));
  const late = new Map(s.late.map((l) => [`${l.slot}/${l.node}`, l.delay]));
  const queue = new Map<number, Delivery[]>();
  const localOf = (n: SimNode, g: number) => Math.max(0, g + (s.offsets[n.i] ?? 0));
  const isolated = (node: number, g: number) =>
    g <= END && s.partitions.some((p) => p.nodes.includes(node) && g >= p.start && g < p.start + p.len);
  const schedule = (at: number, d: Delivery) => {
    const list = queue.get(at) ?? [];
    list.push(d);
    queue.set(at, list);
  };

  // The adversary's sends.
  for (const a of s.attacks) {
    const attack = fx.attacks[a.rec]!;
    for (const node of a.nodes)
      schedule(Math.max(attack.earliest, a.at), { node, rec: attack.rec, via: a.via, attack: true });
  }

  /** Gossip to everyone else: each delivery after its own delay, nothing from or to an isolated node. */
  const spread = (author: number, rec: StoredRecord, slot: number, g: number) => {
    if (author >= 0 && isolated(author, g)) return; // it reaches the others when the partition heals
    for (let node = 0; node < NODES; node++) {
      if (node === author) continue;
      const delay = late.get(`${slot}/${node}`) ?? 1 + (mix(s.jitter, slot, node) % GOSSIP_DELAY);
      schedule(g + delay, { node, rec, via: delay <= GOSSIP_DELAY ? 'gossip' : 'sync' });
    }
  };

  const store = (n: SimNode, rec: StoredRecord) => {
    n.store.set(rec.id, rec);
    n.version++;
    n.dirty = true;
  };

  const arrive = async (n: SimNode, rec: StoredRecord, via: Via | 'self', now: number): Promise<boolean> => {
    if (n.store.has(rec.id)) return false;
    try {
      await checkRecord(rec.record, config, arrivalContext(config, now, n.view.lastVotedFinal, via));
    } catch (err) {
      if (!(err instanceof RecordRefused)) throw err;
      out.refusals[err.code] = (out.refusals[err.code] ?? 0) + 1;
      return false;
    }
    store(n, rec);
    return true;
  };

  const observe = (n: SimNode, g: number) => {
    const v = n.view;
    const at = `${n.name} at block ${g}`;
    for (const c of v.checkpoints) {
      if (c.epoch <= v.lastVotedFinal) {
        const seen = n.voteFinal.get(c.epoch);
        if (seen === undefined) n.voteFinal.set(c.epoch, c.hash);
        else if (seen !== c.hash) {
          out.voteFinalChanged.push(`${at}: epoch ${c.epoch} (final by votes) changed hash`);
          n.voteFinal.set(c.epoch, c.hash);
        }
      }
      if (c.final) {
        const seen = n.anyFinal.get(c.epoch);
        if (seen === undefined) n.anyFinal.set(c.epoch, c.hash);
        else if (seen !== c.hash) {
          out.anyFinalChanged.push(`${at}: epoch ${c.epoch} (final) changed hash`);
          n.anyFinal.set(c.epoch, c.hash);
        }
      }
    }
    for (const e of n.voteFinal.keys())
      if (e > v.lastVotedFinal) {
        out.voteFinalChanged.push(`${at}: epoch ${e} is no longer final by votes`);
        n.voteFinal.delete(e);
      }
    for (const e of n.anyFinal.keys())
      if (e > v.lastFinal) {
        out.anyFinalChanged.push(`${at}: epoch ${e} is no longer final`);
        n.anyFinal.delete(e);
      }
    if (v.lastVotedFinal >= 1) {
      const balance = v.state.balances[fx.x.id] ?? 0n;
      if (n.xAtFinal === null) n.xAtFinal = balance;
      else if (balance !== n.xAtFinal) {
        out.paymentUndone.push(`${at}: X holds ${balance}, ${n.xAtFinal} when epoch 1 was final`);
        n.xAtFinal = balance;
      }
    }
  };

  /** Replay when something was stored or an epoch's grace passed (the Consensus service's rule). */
  const refresh = (n: SimNode, g: number) => {
    const closeThrough = Math.max(0, localOf(n, g) - config.graceBlocks);
    const epoch = Math.floor(closeThrough / T);
    if (!n.dirty && epoch === n.viewEpoch) return;
    n.view = replay(config, [...n.store.values()], closeThrough);
    n.viewEpoch = epoch;
    n.dirty = false;
    out.replays++;
    observe(n, g);
  };

  /** RecordBook.publish: the next sequence number, checked as the node's own record, then gossiped. */
  const publish = async <K extends RecordKind>(n: SimNode, kind: K, body: Body<K>, g: number): Promise<boolean> => {
    const v = n.validator!;
    const seq = n.nextSeq;
    const rec = await signOnce(v, kind, localOf(n, g), body, seq);
    if (!(await arrive(n, rec, 'self', localOf(n, g)))) return false;
    n.nextSeq++;
    spread(n.i, rec, STATIC_SLOTS + n.i * 16 + ((seq - 4) % 16), g);
    return true;
  };

  /** What a node signs at block g: its static records, and a validator's weights and votes. */
  const duties = async (n: SimNode, g: number) => {
    const now = localOf(n, g);
    fx.statics.forEach(({ rec, author }, slot) => {
      if (author !== n.i || rec.record.block !== now || n.published.has(slot)) return;
      n.published.add(slot);
      store(n, rec);
      spread(n.i, rec, slot, g);
    });
    if (!n.validator) return;
    refresh(n, g);
    const vi = n.i;
    const epoch = Math.floor(now / T);
    const offset = now % T;
    const state = n.view.state;
    const uid = uidOf(state, NETUID, n.id);
    const permitted = uid >= 0 && (state.subnets[0]!.permits[uid] ?? false);
    if (offset >= 1 && offset < T / 2 - 1 && epoch >= 1 && !n.committed.has(epoch) && permitted) {
      const uids = fx.miners.map((m) => uidOf(state, NETUID, m.id));
      if (uids.every((u) => u >= 0) && uids[0]! < uids[1]!) {
        const weights = { uids, values: WEIGHTS[vi]!, salt: saltOf(vi, epoch) };
        if (
          await publish(
            n,
            'weights.commit',
            { netuid: NETUID, hash: weightsCommitHash({ netuid: NETUID, ...weights }) },
            g,
          )
        )
          n.committed.set(epoch, weights);
      }
    } else if (offset > T / 2 && offset < T - 1 && n.committed.has(epoch - 1) && !n.revealed.has(epoch - 1)) {
      if (n.view.lastFinal >= epoch - 1) {
        n.revealed.add(epoch - 1);
        await publish(n, 'weights.reveal', { netuid: NETUID, ...n.committed.get(epoch - 1)! }, g);
      }
    }
  };

  /** RecordBook.drop: forget records; our chain continues after the last of ours still held. */
  const drop = (n: SimNode, ids: readonly string[]) => {
    if (ids.length === 0) return;
    for (const id of ids) n.store.delete(id);
    n.version++;
    n.dirty = true;
    if (n.validator) {
      const mine = [...n.store.values()].filter((r) => r.record.author === n.id);
      n.nextSeq = Math.max(0, ...mine.map((r) => r.record.seq)) + 1;
    }
  };

  /** Sync.checkpoint as `src` serves it: the remembered set of an epoch it saw final, else its current one. */
  const serveCheckpoint = (src: SimNode, epoch: number): FinalSet | null => {
    const known = src.finalSets.get(epoch);
    if (known) return known;
    const c = src.view.checkpoints.find((x) => x.epoch === epoch);
    if (!c) return null;
    const ids = checkpointIds(config, [...src.store.values()], src.view.refused, epoch);
    return { epoch, hash: c.hash, recordsRoot: c.recordsRoot, stateRoot: c.stateRoot, previous: c.previous, ids };
  };

  /** Finality.adopt: from the first voter that serves the winning checkpoint, back to where both agree. */
  const adopt = async (n: SimNode, g: number, epoch: number, hash: string, voters: string[]): Promise<boolean> => {
    for (const voter of voters) {
      const src = nodes.find((m) => m.id === voter);
      if (!src || src === n || isolated(src.i, g)) continue;
      const sets: FinalSet[] = [];
      let served = true;
      for (let target = { epoch, hash }; ;) {
        const set = serveCheckpoint(src, target.epoch);
        if (
          !set ||
          checkpointHash(config.networkId, set) !== target.hash ||
          recordsRootOf(set.ids) !== set.recordsRoot
        ) {
          served = false;
          break;
        }
        sets.unshift(set);
        const mine = n.view.checkpoints.find((c) => c.epoch === target.epoch - 1);
        if (target.epoch === 0 || !mine || mine.hash === set.previous) break;
        target = { epoch: target.epoch - 1, hash: set.previous };
      }
      if (!served) continue;
      // Fetch everything first; a voter that lacks a record of its own set is skipped.
      const wanted = sets.flatMap((set) => set.ids).filter((id) => !n.store.has(id));
      if (wanted.some((id) => !src.store.has(id))) continue;
      let refused = false;
      for (const id of wanted) {
        const rec = src.store.get(id)!;
        try {
          await checkRecord(rec.record, config, { nowBlock: localOf(n, g), minBlock: 0 });
          store(n, rec);
        } catch (err) {
          if (!(err instanceof RecordRefused)) throw err;
          refused = true;
        }
      }
      if (refused) continue;
      for (const set of sets) drop(n, adoption(config, [...n.store.values()], set.epoch, set.ids).drop);
      out.adoptions++;
      return true;
    }
    return false;
  };

  /**
   * Finality.follow after a replay: remember the record sets of epochs final by votes and repair the store when
   * one of them changed; adopt the oldest checkpoint another hash outvoted; vote on the non-final checkpoints
   * before it. Returns whether the store changed.
   */
  const follow = async (n: SimNode, g: number): Promise<boolean> => {
    const before = n.version;
    const view = n.view;
    for (const c of view.checkpoints) {
      if (!c.final || c.epoch > view.lastVotedFinal || n.finalSets.has(c.epoch)) continue;
      const ids = checkpointIds(config, [...n.store.values()], view.refused, c.epoch);
      const { epoch, hash, recordsRoot, stateRoot, previous } = c;
      if (recordsRootOf(ids) === recordsRoot)
        n.finalSets.set(epoch, { epoch, hash, recordsRoot, stateRoot, previous, ids });
    }
    for (const set of n.finalSets.values()) {
      const now = view.checkpoints.find((c) => c.epoch === set.epoch);
      if (now && now.hash !== set.hash) {
        drop(n, adoption(config, [...n.store.values()], set.epoch, set.ids).drop);
        out.repairs++;
      }
    }
    const lost = view.checkpoints.find((c) => !c.final && outvotedBy(c));
    if (lost && !isolated(n.i, g)) {
      const winner = outvotedBy(lost)!;
      await adopt(n, g, lost.epoch, winner.hash, winner.voters);
    }
    if (n.validator)
      for (const c of view.checkpoints) {
        if (lost && c.epoch >= lost.epoch) break;
        if (c.final || !c.voters.includes(n.id) || c.voted.includes(n.id) || n.voting.has(c.epoch)) continue;
        n.voting.add(c.epoch);
        const { recordsRoot, stateRoot, previous } = c;
        if (!(await publish(n, 'checkpoint', { epoch: c.epoch, recordsRoot, stateRoot, previous }, g)))
          n.voting.delete(c.epoch);
      }
    return n.version !== before;
  };

  const step = async (n: SimNode, g: number, arrivals: Delivery[]) => {
    const now = localOf(n, g);
    const mine = arrivals
      .filter((d) => d.node === n.i)
      .sort((a, b) => mix(s.order[n.i] ?? 0, a.rec.id) - mix(s.order[n.i] ?? 0, b.rec.id));
    for (const d of mine)
      if (!isolated(n.i, g) && (await arrive(n, d.rec, d.via, now)) && d.attack) out.attacksStored++;
    refresh(n, g);
    await duties(n, g);
    refresh(n, g);
    for (let k = 0; k < 4 && (await follow(n, g)); k++) refresh(n, g);
  };

  /** Every reachable node gets, by sync, what the reachable honest nodes hold. */
  const syncAll = async (g: number) => {
    const reachable = nodes.filter((n) => !isolated(n.i, g));
    const union = new Map<string, StoredRecord>();
    for (const n of reachable) for (const [id, r] of n.store) union.set(id, r);
    for (const n of reachable) for (const r of union.values()) await arrive(n, r, 'sync', localOf(n, g));
  };

  for (let g = 0; g <= END; g++) {
    if (s.partitions.some((p) => p.start + p.len === g)) await syncAll(g);
    fx.statics.forEach(({ rec, author }, slot) => {
      if (author === -1 && rec.record.block === g) spread(-1, rec, slot, g);
    });
    const arrivals = queue.get(g) ?? [];
    queue.delete(g);
    for (const n of nodes) await step(n, g, arrivals);
  }
  // The end (one block later, every partition healed): everything still in flight arrives, late, so by sync;
  // then everyone syncs until nothing changes.
  const last = END + 1;
  const rest = [...queue.entries()].sort(([a], [b]) => a - b).flatMap(([, ds]) => ds);
  for (const n of nodes) {
    for (const d of rest) if (d.node === n.i) await arrive(n, d.rec, 'sync', localOf(n, last));
    await step(n, last, []);
  }
  for (let round = 0; round < 8; round++) {
    const before = nodes.map((n) => n.version);
    await syncAll(last);
    for (const n of nodes) await step(n, last, []);
    if (nodes.every((n, k) => n.version === before[k])) break;
  }

  // Property 1: the same final checkpoints everywhere, and the same lastFinal.
  const [first, ...others] = nodes;
  const finals = (n: SimNode) =>
    n.view.checkpoints.filter((c) => c.epoch <= n.view.lastFinal).map((c) => `${c.epoch}:${c.hash.slice(0, 12)}`);
  for (const n of others) {
    if (n.view.lastFinal !== first!.view.lastFinal)
      out.disagreement.push(`lastFinal: ${first!.name} ${first!.view.lastFinal}, ${n.name} ${n.view.lastFinal}`);
    const [a, b] = [finals(first!), finals(n)];
    for (let k = 0; k < Math.min(a.length, b.length); k++)
      if (a[k] !== b[k]) out.disagreement.push(`final checkpoint: ${first!.name} ${a[k]}, ${n.name} ${b[k]}`);
  }
  out.lastFinal = nodes.map((n) => n.view.lastFinal);
  out.xBalance = nodes.map((n) => n.view.state.balances[fx.x.id] ?? 0n);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The properties.

/** Fixed, so a failure names a reproducible run; NETWORK_SIM_SEED and NETWORK_SIM_RUNS search further. */
const SEED = Number(process.env.NETWORK_SIM_SEED ?? 20260917);
const RUNS = Number(process.env.NETWORK_SIM_RUNS ?? 25);
const options = (more: Partial<fc.Parameters<[Scenario]>> = {}): fc.Parameters<[Scenario]> => ({
  seed: SEED,
  numRuns: RUNS,
  ...more,
});

let fx: Fixture;
/** The tests below run the same scenarios (one seed, one arbitrary): each is simulated once. */
const outcomes = new Map<string, Promise<Outcome>>();
const outcomeOf = (s: Scenario): Promise<Outcome> => {
  const key = JSON.stringify(s);
  let p = outcomes.get(key);
  if (!p) outcomes.set(key, (p = simulate(fx, s)));
  return p;
};

/** Everything on time (1-2 blocks), no partition, no adversary, plus `more`. */
const calm = (more: Partial<Scenario> = {}): Scenario => ({
  offsets: [0, 0, 0, 0, 0],
  jitter: 0,
  late: [],
  order: [0, 0, 0, 0, 0],
  partitions: [],
  attacks: [],
  ...more,
});

/**
 * Shrunk counterexamples. fast-check found the first as `late: [{slot: 9, node: 0, delay: 35}]` (v1 without v2's
 * stake: v1 alone then holds 2/3 of its voters' stake plus 1 rao of epoch-0 dividends); the one kept here has a
 * clear margin. It found the third exactly as written (seed 2, run 435 before attacks went to node subsets).
 */
const counterexamples = {
  /** No adversary: v1's and v2's epoch-0 stake.add (slots 8, 9) reach v3 only at block 42, by sync. */
  lateStake: calm({
    late: [
      { slot: 8, node: 2, delay: 35 },
      { slot: 9, node: 2, delay: 35 },
    ],
  }),
  /** Two registrations dated 12 and 17 (epoch 0, voter-less), synced to v3 only at block 30. */
  evictions: calm({
    attacks: [
      { rec: REGISTER_12, nodes: [2], at: 30, via: 'sync' },
      { rec: REGISTER_17, nodes: [2], at: 30, via: 'sync' },
    ],
  }),
  /** A twin of the payment to X dated 24 (epoch 1), synced to the three validators at block 42. */
  twinAfterVotes: calm({ attacks: [{ rec: TWIN, nodes: [0, 1, 2], at: 42, via: 'sync' }] }),
  /** One registration dated 12, synced to v3 at block 30: epoch 0 was reported final at block 23 there. */
  bootstrapReopened: calm({ attacks: [{ rec: REGISTER_12, nodes: [2], at: 30, via: 'sync' }] }),
};

beforeAll(async () => {
  fx = await buildFixture();
  expect(fx.attacks.length).toBe(ATTACKS);
  expect(fx.attacks[TWIN]!.name).toBe('backdated twin of the payment');
  expect(fx.attacks[REGISTER_12]!.name).toBe('register dated 12');
  expect(fx.attacks[REGISTER_17]!.name).toBe('register dated 17');
});

describe('honest nodes under delays, partitions and a backdating, equivocating, replaying adversary', () => {
  it('on time and without an adversary, every node finalizes epochs 0-3 with the same checkpoints', async () => {
    const o = await simulate(fx, calm());
    expect(o.disagreement).toEqual([]);
    expect(o.lastFinal).toEqual([3, 3, 3, 3, 3]);
    expect(o.xBalance).toEqual([PAYMENT, PAYMENT, PAYMENT, PAYMENT, PAYMENT]);
    expect(o.voteFinalChanged).toEqual([]);
    expect(o.anyFinalChanged).toEqual([]);
  });

  // FAILS on one counterexample (evictions, below): the bootstrap voter set is each node's own. Flip to `it` once a
  // network config names its genesis validators.
  it.fails('(1) at the end, every honest node reports the same final checkpoints and the same lastFinal', async () => {
    const { lateStake, evictions, twinAfterVotes } = counterexamples;
    await fc.assert(
      fc.asyncProperty(scenarioArb(), async (s) => {
        expect((await outcomeOf(s)).disagreement).toEqual([]);
      }),
      options({ examples: [[lateStake], [evictions], [twinAfterVotes]], endOnFailure: true }),
    );
  });

  it('(1) holds for honest nodes alone once the voter-less epoch 0 reached every node in time', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ bootstrapSafe: true, honest: true }), async (s) => {
        expect((await outcomeOf(s)).disagreement).toEqual([]);
      }),
      options(),
    );
  });

  it('(2) once an epoch is final by votes on a node, its checkpoint there never changes', async () => {
    const seen: Outcome[] = [];
    await fc.assert(
      fc.asyncProperty(scenarioArb(), async (s) => {
        const o = await outcomeOf(s);
        seen.push(o);
        expect(o.voteFinalChanged).toEqual([]);
      }),
      options(),
    );
    // The runs did exercise the rules: attacks stored and refused, adoptions, full finality.
    const sum = (f: (o: Outcome) => number) => seen.reduce((a, o) => a + f(o), 0);
    expect(sum((o) => o.attacksStored)).toBeGreaterThan(0);
    expect(sum((o) => o.refusals['final'] ?? 0)).toBeGreaterThan(0);
    expect(sum((o) => o.adoptions)).toBeGreaterThan(0);
    expect(seen.some((o) => o.lastFinal.every((e) => e === 3))).toBe(true);
  });

  // Only votes make an epoch final: a voter-less epoch 0 is never reported final, so it cannot change after.
  it('(2) read literally: no epoch a node reported final (voter-less epoch 0 too) ever changes', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb(), async (s) => {
        expect((await outcomeOf(s)).anyFinalChanged).toEqual([]);
      }),
      options({ examples: [[counterexamples.bootstrapReopened]], endOnFailure: true }),
    );
  });

  it('(3) the backdated twin never takes back the payment to X once its epoch is final by votes', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb(), async (s) => {
        expect((await outcomeOf(s)).paymentUndone).toEqual([]);
      }),
      options({ examples: [[counterexamples.twinAfterVotes]] }),
    );
  });

  /**
   * Counterexamples the simulator found, kept as regression tests. lateStake and twinAfterVotes were bugs, fixed:
   * only votes make an epoch final (epoch 0 no longer final at its close), a node refuses records of an epoch it
   * voted on, and remembers the set it voted for (so it can restore it and serve it). evictions remains: the
   * voters of the first voted epoch are whoever each node's own replay of the voter-less epochs gives permits, so
   * proof-of-work registrations delivered late to one validator can change its voter set (docs/ledger.md, known
   * limits: the bootstrap validator set is subjective until the config names genesis validators).
   */
  describe('counterexamples', () => {
    it('no adversary: v3 gets the epoch-0 stake of v1 and v2 late, and still agrees with everyone', async () => {
      const o = await simulate(fx, counterexamples.lateStake);
      // v3's replay gave only v3 a permit for epoch 1: its own vote is all its stake, and epochs 0-3 are final
      // there with other hashes than on the four other nodes, which refuse nothing from it (nothing to adopt).
      expect(o.disagreement).toEqual([]);
    });

    it.fails('two backdated registrations into voter-less epoch 0 evict v1 and v2 from v3’s voter set', async () => {
      const o = await simulate(fx, counterexamples.evictions);
      expect(o.disagreement).toEqual([]);
    });

    it('a twin synced to the validators after they voted does not strand them: finality goes on', async () => {
      const o = await simulate(fx, counterexamples.twinAfterVotes);
      // m1 and m2 see epoch 1 final (3 votes of 3); the validators, which took the twin after voting, are
      // outvoted by their own votes, but no voter serves the voted checkpoint any more and they stop voting.
      expect(o.disagreement).toEqual([]);
      expect(o.lastFinal).toEqual([3, 3, 3, 3, 3]);
    });
  });
});
