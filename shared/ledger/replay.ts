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
import { RecordRefused, type LedgerRecord, type RefusalCode } from './records.ts';
import {
  applyRecord,
  CHAIN_REFUSALS,
  checkpointHash,
  genesisHash,
  initialState,
  settleFinality,
  stateRoot,
  tallyOf,
  totalStake,
  type CheckpointTally,
  type LedgerState,
} from './state.ts';

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
}

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

/** Hotkeys with a permit on any subnet right now, with their stake: who may vote on the epoch that starts. */
function currentVoters(state: LedgerState): Record<string, bigint> {
  const voters: Record<string, bigint> = {};
  for (const sub of state.subnets)
    sub.uids.forEach((u, uid) => {
      // A frozen author's votes cannot count: its stake must not count among the permitted stake either.
      if (sub.permits[uid] && !state.frozen[u.hotkey]) voters[u.hotkey] = totalStake(state, u.hotkey);
    });
  return voters;
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
 */
export function replay(config: NetworkConfig, records: readonly StoredRecord[], closeThrough: number): Replay {
  const state = initialState(config);
  const unique = new Map(records.map((r) => [r.id, r]));
  const ordered = [...unique.values()].sort(canonicalOrder);
  const subnets = [...config.subnets].sort((a, b) => a.netuid - b.netuid);
  const tempo = epochBlocks(config);
  const epochs: ClosedEpoch[] = [];
  const refused: Replay['refused'] = {};
  const chained: { block: number; id: string }[] = [];
  let closed = 0;
  let previous = genesisHash(config);
  // Nobody holds a permit at genesis: epoch 0 has no voters, and is final when it closes.
  state.checkpoints.push(newTally(0, {}));

  const closeUpTo = (block: number) => {
    while ((closed + 1) * tempo <= block) {
      const epoch = closed;
      const end = (epoch + 1) * tempo;
      const summaries = subnets.map((cfg) => closeEpoch(state, config, cfg));
      const ids = chained.filter((a) => a.block >= epoch * tempo && a.block < end).map((a) => a.id);
      const recordsRoot = bytesToHex(sha256(new TextEncoder().encode(ids.join('\n'))));
      const root = stateRoot(state);
      for (const summary of summaries) epochs.push({ ...summary, records: ids.length, recordsRoot, stateRoot: root });
      const tally = tallyOf(state, epoch)!;
      Object.assign(tally, { recordsRoot, stateRoot: root, previous });
      tally.hash = previous = checkpointHash(config.networkId, tally);
      // Who votes on the next epoch: the permits this close just set, with the stake they have now.
      state.checkpoints.push(newTally(epoch + 1, currentVoters(state)));
      if (state.checkpoints.length > MAX_TALLIES) state.checkpoints.shift();
      settleFinality(state, end);
      closed++;
    }
  };

  for (const { id, record } of ordered) {
    closeUpTo(record.block);
    try {
      applyRecord(state, config, record);
      chained.push({ block: record.block, id });
    } catch (err) {
      if (!(err instanceof RecordRefused)) throw err;
      refused[id] = { code: err.code, message: err.message };
      if (!CHAIN_REFUSALS.has(err.code)) chained.push({ block: record.block, id });
    }
  }
  closeUpTo(closeThrough);
  // Views show epochs closed by `closeThrough` only: a record of the next epoch closes one early inside the replay,
  // but nobody should vote before the grace for late records has passed.
  const checkpoints = state.checkpoints
    .filter((t) => t.hash !== '' && (t.epoch + 1) * tempo <= closeThrough)
    .map(checkpointView);
  return { state, epochs, checkpoints, lastFinal: state.lastFinal, lastVotedFinal: state.lastVotedFinal, refused };
}
