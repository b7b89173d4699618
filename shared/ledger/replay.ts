/**
 * Replay: the ledger state and every closed epoch as a pure function of the config and a set of records.
 * Records are applied in canonical order (block, author, seq, id), so arrival order never matters; each subnet's
 * epoch e closes at block (e+1)*tempo, before any record of that block. Each closed epoch carries its
 * recordsRoot (sha256 over the ids of the records accepted in its blocks) and stateRoot (stateRoot() of the
 * whole ledger right after it closed): the two numbers nodes compare to agree.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { epochBlocks, type NetworkConfig } from './config.ts';
import { closeEpoch, type EpochSummary } from './epoch.ts';
import { JobClock, type JobSettlement } from './jobs.ts';
import { RecordRefused, type LedgerRecord, type RefusalCode } from './records.ts';
import {
  applyRecord,
  CHAIN_REFUSALS,
  checkpointHash,
  genesisHash,
  initialState,
  nextVoters,
  rootOf,
  settleFinality,
  stateRootParts,
  tallyOf,
  votersHash,
  type CheckpointTally,
  type LedgerState,
} from './state.ts';
import { StateDigest, stateFromText } from './state-text.ts';

export interface StoredRecord {
  id: string;
  record: LedgerRecord;
}

export interface ClosedEpoch extends EpochSummary {
  /** The epoch's checkpoint roots (the same for every subnet: checkpoints cover the whole network). */
  recordsRoot: string;
  stateRoot: string;
  /** How many records took their place in their authors' chains in the epoch's blocks. */
  records: number;
}

/** A checkpoint as the replay left it: this node's roots, the votes on them, and whether the epoch is final. */
export interface CheckpointView {
  epoch: number;
  recordsRoot: string;
  stateRoot: string;
  previous: string;
  hash: string;
  permittedStake: string;
  agreeingStake: string;
  /** Stake behind each other checkpoint hash voters signed (an outvoted node adopts one with over 2/3). */
  otherVotes: { hash: string; stake: string; voters: string[] }[];
  /** Who may vote on it, and who has. */
  voters: string[];
  voted: string[];
  final: boolean;
  finalAt: number | null;
}

export interface Replay {
  state: LedgerState;
  epochs: ClosedEpoch[];
  /** The recent checkpoints (the last MAX_TALLIES), oldest first. */
  checkpoints: CheckpointView[];
  /** The last final epoch, or -1. */
  lastFinal: number;
  /** The last epoch made final by votes: nothing in it or before may arrive any more (see LedgerState). */
  lastVotedFinal: number;
  /** Records the replay refused (valid signatures, but not valid against the state), by id. */
  refused: Record<string, { code: RefusalCode; message: string }>;
  /** Every closed epoch's checkpoint (from genesis: a base brings the links before it), for joining nodes. */
  chain: ChainLink[];
  /** The state at the close of the last epoch voted final, if the replay still holds it: what joiners download. */
  finalState: { epoch: number; text: string } | null;
  /** The state texts at the recent closes (the last MAX_TALLIES), by epoch. */
  recentStates: ReadonlyMap<number, string>;
  /** The epoch of the base this replay continued from, or -1 (from genesis). */
  baseEpoch: number;
  /** The batch jobs this replay closed, in the order it closed them (docs/jobs.md). */
  settledJobs: JobSettlement[];
}

/**
 * One closed epoch's checkpoint and the two parts of its stateRoot: who votes on the next epoch (with their
 * stake) and the hash of the state's text. A joining node checks each link against the one before.
 */
export interface ChainLink {
  epoch: number;
  recordsRoot: string;
  stateRoot: string;
  previous: string;
  /** The body hash of the state's text at the close (state-text.ts). */
  bodyHash: string;
  /** nextVoters() at the close, stakes as decimal strings. */
  nextVoters: Record<string, string>;
}

/**
 * Where a replay may start instead of genesis: the state at the close of a final epoch (stateText, whose hash
 * its checkpoint names) and the checkpoint chain up to it. A node that joined from a checkpoint holds no records
 * before it. See join.ts for how a base is verified.
 */
export interface ReplayBase {
  epoch: number;
  stateText: string;
  chain: ChainLink[];
}

/** The checkpoint hash of a chain link. */
export const linkHash = (network: string, l: ChainLink): string => checkpointHash(network, l);

/** Whether `l`'s stateRoot is made of its nextVoters and bodyHash. */
export const linkRootHolds = (l: ChainLink): boolean => rootOf(votersHash(l.nextVoters), l.bodyHash) === l.stateRoot;

/** Checkpoint tallies kept (older ones are settled history; votes on them are refused). */
export const MAX_TALLIES = 16;

export function canonicalOrder(a: StoredRecord, b: StoredRecord): number {
  const x = a.record;
  const y = b.record;
  if (x.block !== y.block) return x.block - y.block;
  if (x.author !== y.author) return x.author < y.author ? -1 : 1;
  if (x.seq !== y.seq) return x.seq - y.seq;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function newTally(epoch: number, voters: Record<string, bigint>): CheckpointTally {
  const permittedStake = Object.values(voters).reduce((a, b) => a + b, 0n);
  return {
    epoch,
    recordsRoot: '',
    stateRoot: '',
    previous: '',
    hash: '',
    voters,
    permittedStake,
    votes: {},
    agreeingStake: 0n,
    final: false,
    finalAt: null,
  };
}

export function checkpointView(t: CheckpointTally): CheckpointView {
  const others = new Map<string, { stake: bigint; voters: string[] }>();
  for (const [voter, v] of Object.entries(t.votes)) {
    if (v.hash === t.hash) continue;
    const o = others.get(v.hash) ?? { stake: 0n, voters: [] };
    o.stake += t.voters[voter] ?? 0n;
    o.voters.push(voter);
    others.set(v.hash, o);
  }
  return {
    epoch: t.epoch,
    recordsRoot: t.recordsRoot,
    stateRoot: t.stateRoot,
    previous: t.previous,
    hash: t.hash,
    permittedStake: t.permittedStake.toString(),
    agreeingStake: t.agreeingStake.toString(),
    otherVotes: [...others].map(([hash, o]) => ({ hash, stake: o.stake.toString(), voters: o.voters.sort() })),
    voters: Object.keys(t.voters).sort(),
    voted: Object.keys(t.votes).sort(),
    final: t.final,
    finalAt: t.finalAt,
  };
}

/**
 * Replay `records` and close every epoch that ends at or before `closeThrough` (a block). Duplicate ids count
 * once. Pure: the same config, records and block give the same result on every node. At each epoch's end every
 * subnet closes, then the epoch's checkpoint is computed: the recordsRoot over the ids of the records that took
 * their place in their authors' chains in the epoch's blocks (in canonical order), the stateRoot of the whole
 * ledger after the close, and the hash of the previous checkpoint. Votes on it are records of later blocks.
 * With a `base`, the replay starts from the state at its epoch's close and ignores records before the next epoch.
 * A `digest` kept from an earlier replay lets its closes rehash only the state entries that changed since.
 */
export function replay(
  config: NetworkConfig,
  records: readonly StoredRecord[],
  closeThrough: number,
  base?: ReplayBase,
  digest = new StateDigest(),
): Replay {
  const tempo = epochBlocks(config);
  const subnets = [...config.subnets].sort((a, b) => a.netuid - b.netuid);
  const epochs: ClosedEpoch[] = [];
  const refused: Replay['refused'] = {};
  const chained: { block: number; id: string }[] = [];
  const chain: ChainLink[] = base ? [...base.chain] : [];
  // The state texts of the recent closes, by epoch: the one of the last voted-final epoch is served to joiners.
  const texts = new Map<number, string>();
  let state: LedgerState;
  let closed: number;
  let previous: string;

  // The end of a close, shared by a replayed close and a base: name the checkpoint, open the next tally.
  const finishClose = (epoch: number, link: ChainLink, text: string) => {
    const tally = tallyOf(state, epoch)!;
    Object.assign(tally, { recordsRoot: link.recordsRoot, stateRoot: link.stateRoot, previous: link.previous });
    tally.hash = previous = checkpointHash(config.networkId, tally);
    // Who votes on the next epoch: the permits this close just set, with the stake they have now.
    state.checkpoints.push(newTally(epoch + 1, nextVoters(state)));
    if (state.checkpoints.length > MAX_TALLIES) state.checkpoints.shift();
    texts.set(epoch, text);
    texts.delete(epoch - MAX_TALLIES);
    settleFinality(state, (epoch + 1) * tempo);
    closed = epoch + 1;
  };

  if (base) {
    const link = base.chain.at(-1);
    if (!link || link.epoch !== base.epoch) throw new Error(`the base's chain does not end at epoch ${base.epoch}`);
    state = stateFromText(base.stateText);
    previous = link.previous;
    finishClose(base.epoch, link, base.stateText);
  } else {
    state = initialState(config);
    closed = 0;
    previous = genesisHash(config);
    // Nobody holds a permit at genesis: epoch 0 has no voters, and is final when it closes.
    state.checkpoints.push(newTally(0, {}));
  }
  // Batch jobs change with time as well as with records: before any record of block b, and before the close at
  // block b, every claim lapse, deadline and settlement up to b happens (jobs.ts). The clock knows when each
  // open job next changes, so a block at which nothing is due costs one comparison.
  const settledJobs: JobSettlement[] = [];
  const jobClock = new JobClock(state, config);
  const advance = (block: number) => settledJobs.push(...jobClock.advance(state, config, block));
  const start = closed! * tempo;
  const unique = new Map(records.filter((r) => r.record.block >= start).map((r) => [r.id, r]));
  const ordered = [...unique.values()].sort(canonicalOrder);

  const closeUpTo = (block: number) => {
    while ((closed + 1) * tempo <= block) {
      const epoch = closed;
      const end = (epoch + 1) * tempo;
      advance(end);
      const summaries = subnets.map((cfg) => closeEpoch(state, config, cfg));
      const ids = chained.filter((a) => a.block >= epoch * tempo && a.block < end).map((a) => a.id);
      const recordsRoot = bytesToHex(sha256(new TextEncoder().encode(ids.join('\n'))));
      const { text, bodyHash, voters } = stateRootParts(state, digest);
      const link = {
        epoch,
        recordsRoot,
        stateRoot: rootOf(votersHash(voters), bodyHash),
        previous,
        bodyHash,
        nextVoters: voters,
      };
      for (const summary of summaries)
        epochs.push({ ...summary, records: ids.length, recordsRoot, stateRoot: link.stateRoot });
      chain.push(link);
      finishClose(epoch, link, text);
    }
  };

  for (const { id, record } of ordered) {
    closeUpTo(record.block);
    advance(record.block);
    try {
      const settled = applyRecord(state, config, record, id);
      if (settled) settledJobs.push(settled);
      chained.push({ block: record.block, id });
    } catch (err) {
      if (!(err instanceof RecordRefused)) throw err;
      refused[id] = { code: err.code, message: err.message };
      if (!CHAIN_REFUSALS.has(err.code)) chained.push({ block: record.block, id });
    }
    if (record.kind === 'job.open') jobClock.touch(state, config, id);
    else if ('job' in record.body) jobClock.touch(state, config, record.body.job);
  }
  closeUpTo(closeThrough);
  advance(closeThrough);
  // Views show epochs closed by `closeThrough` only: a record of the next epoch closes one early inside the replay,
  // but nobody should vote before the grace for late records has passed.
  const checkpoints = state.checkpoints
    .filter((t) => t.hash !== '' && (t.epoch + 1) * tempo <= closeThrough)
    .map(checkpointView);
  // A base was verified final by votes: nothing in or before it may arrive, whatever the replay has counted since.
  const baseEpoch = base?.epoch ?? -1;
  const lastVotedFinal = Math.max(state.lastVotedFinal, baseEpoch);
  const finalText = texts.get(lastVotedFinal);
  return {
    state,
    epochs,
    checkpoints,
    lastFinal: Math.max(state.lastFinal, baseEpoch),
    lastVotedFinal,
    refused,
    chain,
    finalState: finalText === undefined ? null : { epoch: lastVotedFinal, text: finalText },
    baseEpoch,
    recentStates: texts,
    settledJobs,
  };
}
