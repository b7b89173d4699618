/**
 * What a node keeps of a replay: closed epochs, balances, stake per hotkey and the subnets' UIDs. Built the same
 * way whether the replay ran in a tab's consensus worker or in Node, so both show the same numbers.
 */
import type { ChainLink, CheckpointView, ClosedEpoch, Replay } from './replay.ts';
import type { JobSettlement, JobState } from './jobs.ts';
import { totalStake, type SubnetState } from './state.ts';

export interface LedgerSnapshot {
  closeThrough: number;
  records: number;
  refused: Replay['refused'];
  epochs: ClosedEpoch[];
  /** The recent checkpoints: this node's roots, the votes on them, finality. */
  checkpoints: CheckpointView[];
  /** The last final epoch, or -1. */
  lastFinal: number;
  /** The last epoch made final by votes: records of it or before are refused on arrival. */
  lastVotedFinal: number;
  /** Authors frozen for equivocating, with the sequence number they reused. */
  frozen: Record<string, { seq: number; block: number }>;
  balances: Record<string, bigint>;
  /** Total stake by hotkey. */
  stakes: Record<string, bigint>;
  /** Stake by hotkey, then by the account that staked it (admission checks an unstake against it). */
  nominations: Record<string, Record<string, bigint>>;
  /** Each author's chain head (admission counts what is pending after it). */
  chains: Record<string, { seq: number; block: number }>;
  subnets: SubnetState[];
  issued: bigint;
  dust: bigint;
  /** Everything registrations burnt. */
  burned: bigint;
  /** The open batch jobs (docs/jobs.md); admission checks job records against them. */
  jobs?: Record<string, JobState>;
  /**
   * The jobs this replay closed, in the order it closed them, each with its shards as they closed (docs/jobs.md).
   * A replay reports the jobs closed since the state it started from, so a job shows here for an epoch or two after
   * it closes: a node that needs it longer (a client's results) keeps what it saw.
   */
  settledJobs?: JobSettlement[];
  ms: number;
  /** Every closed epoch's checkpoint from genesis (served to joining nodes; a base brings the early links). */
  chain: ChainLink[];
  /** The state at the close of the last voted-final epoch, if held (served to joining nodes). */
  finalState: { epoch: number; text: string } | null;
  /** The epoch of the checkpoint this node joined from, or -1. */
  baseEpoch: number;
}

export function snapshotOf(result: Replay, records: number, closeThrough: number, ms: number): LedgerSnapshot {
  const stakes: Record<string, bigint> = {};
  for (const hotkey of Object.keys(result.state.stakes)) stakes[hotkey] = totalStake(result.state, hotkey);
  return {
    closeThrough,
    records,
    refused: result.refused,
    epochs: result.epochs,
    checkpoints: result.checkpoints,
    lastFinal: result.lastFinal,
    lastVotedFinal: result.lastVotedFinal,
    frozen: result.state.frozen,
    balances: result.state.balances,
    stakes,
    nominations: result.state.stakes,
    chains: result.state.chains,
    subnets: result.state.subnets,
    issued: result.state.issued,
    dust: result.state.dust,
    burned: result.state.burned,
    jobs: result.state.jobs,
    settledJobs: result.settledJobs,
    ms,
    chain: result.chain,
    finalState: result.finalState,
    baseEpoch: result.baseEpoch,
  };
}

/** The UID `hotkey` holds on subnet `netuid` in `snapshot`, or null. */
export function uidOf(snapshot: LedgerSnapshot | null, netuid: number, hotkey: string): number | null {
  const uid = snapshot?.subnets.find((s) => s.netuid === netuid)?.uids.findIndex((u) => u.hotkey === hotkey) ?? -1;
  return uid < 0 ? null : uid;
}
