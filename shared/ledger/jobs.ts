/**
 * Batch jobs paid from a deposit (docs/jobs.md). A client opens a job with a deposit (price × requests, taken from
 * its balance into the job's escrow); miners claim shards (contiguous ranges of the requests), each locking a bond
 * from its balance; a miner publishes the hash of its shard's signed results; the first audit of a permitted
 * validator of the subnet decides: a pass pays the shard from the escrow and returns the bond, a failure destroys
 * the bond and makes the shard claimable again. Whatever no miner earned returns to the client: at once for the
 * shards nobody holds when the client cancels or the deadline passes, and the rest at settlement, one audit
 * window after the deadline. A job leaves the state when every shard is paid or refunded.
 *
 * Conservation, per job: paid + refunded = deposit when it closes, and escrow = deposit − paid − refunded ≥ 0 at
 * every step; bonds locked = bonds returned + bonds forfeited. In the whole ledger (checked by the tests):
 *   Σ balances + Σ stakes + Σ jobs' held (escrow + bonds) + dust + burned + forfeited = Σ initial balances + issued.
 *
 * Time: claims lapse, deadlines pass and jobs settle at given blocks whatever records arrive. The replay advances
 * the jobs to block b (`advanceJobs`, through a `JobClock`) before applying any record of block b and before
 * closing an epoch at its end block b, so every node settles the same jobs at the same place in the same order.
 * `applyJobRecord` assumes the state was advanced to the record's block.
 */
import { epochBlocks, findSubnet, type NetworkConfig } from './config.ts';
import { RecordRefused, type LedgerRecord, type RefusalCode } from './records.ts';
import type { LedgerState } from './state.ts';

/** Jobs open at once, in all and per client (a job's shards are state every node carries until it closes). */
export const MAX_OPEN_JOBS = 128;
export const MAX_OPEN_JOBS_PER_CLIENT = 4;
/** A job's deadline is at most this many epochs after its opening record's block. */
export const MAX_JOB_EPOCHS = 64;
/** A claim lasts this many epochs (never past the job's deadline): the miner publishes its result before then. */
export const CLAIM_EPOCHS = 2;
/** Audits are taken until this many epochs after the deadline; then the job settles. */
export const AUDIT_EPOCHS = 1;
/** Claims one miner may hold at once in one job (claimed, no result yet). */
export const MAX_CLAIMS_PER_MINER = 4;
/** A claim's bond, in multiples of the shard's payment: what a failed audit or a lapsed claim costs the miner. */
export const PENALTY_MULTIPLE = 2n;

/**
 * One shard of a job. `open`: claimable (before the deadline, job not cancelled); `claimed`: `miner` holds it and
 * must publish before block `until`; `result`: the hash is published and waits for an audit; `paid` and `refunded`
 * are settled. `bond` is held in the job's escrow while the shard is claimed or has a result.
 */
export interface ShardState {
  status: 'open' | 'claimed' | 'result' | 'paid' | 'refunded';
  miner?: string;
  bond?: bigint;
  until?: number;
  resultsHash?: string;
}

/** An open job: its terms as the client signed them, its account, and its shards. */
export interface JobState {
  client: string;
  netuid: number;
  model: string;
  requests: number;
  shards: number;
  inputHash: string;
  /** Rao per request. */
  price: bigint;
  maxTokens: number;
  /** Claims are taken before this block, results published before it. */
  deadline: number;
  openedAt: number;
  /** price × requests, taken from the client when the job opened. */
  deposit: bigint;
  /** Paid to miners for shards that passed their audit, and returned to the client, so far. */
  paid: bigint;
  refunded: bigint;
  /** Miners' bonds destroyed so far (failed audits, lapsed claims). */
  forfeited: bigint;
  cancelled: boolean;
  shardStates: ShardState[];
}

/**
 * What a closed job came to (not part of the state: the replay reports it, like an epoch's summary): the job as it
 * closed, its shards paid (with the miner and the hash of the results the client should receive) or refunded.
 */
export interface JobSettlement extends JobState {
  job: string;
  /** The block at which it closed. */
  block: number;
}

const refuse = (code: RefusalCode, message: string): never => {
  throw new RecordRefused(code, message);
};

/** Shard k's requests: indices [start, end) of the request file, contiguous, sizes differing by at most one. */
export function shardRange(requests: number, shards: number, k: number): [number, number] {
  return [Math.floor((k * requests) / shards), Math.floor(((k + 1) * requests) / shards)];
}

/** What shard k pays when it passes: price × its requests. The shards' payments sum to the deposit exactly. */
export function shardPayment(job: Pick<JobState, 'price' | 'requests' | 'shards'>, k: number): bigint {
  const [start, end] = shardRange(job.requests, job.shards, k);
  return job.price * BigInt(end - start);
}

/** The bond a claim on shard k locks. */
export const shardBond = (job: Pick<JobState, 'price' | 'requests' | 'shards'>, k: number): bigint =>
  PENALTY_MULTIPLE * shardPayment(job, k);

/** The block at which a job settles: one audit window after its deadline. */
export const settleBlock = (config: NetworkConfig, job: Pick<JobState, 'deadline'>): number =>
  job.deadline + AUDIT_EPOCHS * epochBlocks(config);

/** Rao a job holds: the deposit not yet paid or refunded, and the bonds of its claimed shards and results. */
export function jobHeld(job: JobState): { escrow: bigint; bonds: bigint } {
  let bonds = 0n;
  for (const s of job.shardStates) if (s.status === 'claimed' || s.status === 'result') bonds += s.bond!;
  return { escrow: job.deposit - job.paid - job.refunded, bonds };
}

/** Rao all open jobs hold (escrow and bonds): part of the supply, like balances and stake. */
export function jobsHeld(state: LedgerState): bigint {
  let total = 0n;
  for (const job of Object.values(state.jobs)) {
    const { escrow, bonds } = jobHeld(job);
    total += escrow + bonds;
  }
  return total;
}

const credit = (state: LedgerState, account: string, amount: bigint) => {
  if (amount > 0n) state.balances[account] = (state.balances[account] ?? 0n) + amount;
};

function liveJob(state: LedgerState, id: string): JobState {
  const job = state.jobs[id];
  if (!job) refuse('unknown-job', `there is no open job ${id}`);
  return job!;
}

function shardOf(job: JobState, id: string, k: number): ShardState {
  if (k >= job.shards) refuse('bad-shard', `job ${id} has ${job.shards} shards; there is no shard ${k}`);
  return job.shardStates[k]!;
}

/** Return an unheld shard's payment to the client. */
function refundShard(state: LedgerState, job: JobState, k: number) {
  const pay = shardPayment(job, k);
  job.refunded += pay;
  credit(state, job.client, pay);
  job.shardStates[k] = { status: 'refunded' };
}

/** A shard nobody holds any more: claimable again before the deadline, refunded once nobody may claim it. */
function reopen(state: LedgerState, job: JobState, k: number, block: number) {
  job.shardStates[k] = { status: 'open' };
  if (job.cancelled || block >= job.deadline) refundShard(state, job, k);
}

/** Destroy a shard's bond (failed audit, lapsed claim) and reopen it. */
function forfeit(state: LedgerState, job: JobState, k: number, block: number) {
  const bond = job.shardStates[k]!.bond!;
  job.forfeited += bond;
  state.forfeited += bond;
  reopen(state, job, k, block);
}

/** Close the job if every shard is paid or refunded: it leaves the state, and its settlement is returned. */
function closeIfDone(state: LedgerState, id: string, block: number): JobSettlement | undefined {
  const job = state.jobs[id]!;
  if (!job.shardStates.every((s) => s.status === 'paid' || s.status === 'refunded')) return undefined;
  if (job.paid + job.refunded !== job.deposit)
    throw new Error(`job ${id} closes with ${job.paid} paid and ${job.refunded} refunded of ${job.deposit}`);
  delete state.jobs[id];
  return { ...job, job: id, block };
}

type JobRecord = Extract<LedgerRecord, { kind: `job.${string}` }>;

/**
 * Apply a job record (through checkRecord and its author's chain) to a state advanced to its block. Throws
 * RecordRefused having changed nothing, or returns the job's settlement if the record closed it.
 */
export function applyJobRecord(
  state: LedgerState,
  config: NetworkConfig,
  r: JobRecord,
  id: string,
): JobSettlement | undefined {
  switch (r.kind) {
    case 'job.open':
      openJob(state, config, r, id);
      return undefined;
    case 'job.claim': {
      const job = liveJob(state, r.body.job);
      const shard = shardOf(job, r.body.job, r.body.shard);
      if (job.cancelled) refuse('job-closed', `job ${r.body.job} was cancelled`);
      if (r.block >= job.deadline) refuse('job-closed', `job ${r.body.job} took claims until block ${job.deadline}`);
      if (shard.status !== 'open')
        refuse('shard-taken', `shard ${r.body.shard} of job ${r.body.job} is ${shard.status}, not open`);
      const sub = state.subnets.find((s) => s.netuid === job.netuid);
      if (!sub?.uids.some((u) => u.hotkey === r.author))
        refuse('not-registered', `${r.author} holds no UID on subnet ${job.netuid}`);
      const held = job.shardStates.filter((s) => s.status === 'claimed' && s.miner === r.author).length;
      if (held >= MAX_CLAIMS_PER_MINER)
        refuse('claim-limit', `${r.author} holds ${held} claims in job ${r.body.job}; at most ${MAX_CLAIMS_PER_MINER}`);
      const bond = shardBond(job, r.body.shard);
      const have = state.balances[r.author] ?? 0n;
      if (have < bond) refuse('overspend', `the balance is ${have} rao; the claim's bond is ${bond}`);
      if (bond > 0n) state.balances[r.author] = have - bond;
      const until = Math.min(r.block + CLAIM_EPOCHS * epochBlocks(config), job.deadline);
      job.shardStates[r.body.shard] = { status: 'claimed', miner: r.author, bond, until };
      return undefined;
    }
    case 'job.result': {
      const job = liveJob(state, r.body.job);
      const shard = shardOf(job, r.body.job, r.body.shard);
      if (shard.status !== 'claimed' || shard.miner !== r.author || r.block >= shard.until!)
        refuse('not-claimant', `${r.author} holds no live claim on shard ${r.body.shard} of job ${r.body.job}`);
      job.shardStates[r.body.shard] = {
        status: 'result',
        miner: r.author,
        bond: shard.bond!,
        resultsHash: r.body.resultsHash,
      };
      return undefined;
    }
    case 'job.audit': {
      const job = liveJob(state, r.body.job);
      const k = r.body.shard;
      const shard = shardOf(job, r.body.job, k);
      const sub = state.subnets.find((s) => s.netuid === job.netuid)!;
      const uid = sub.uids.findIndex((u) => u.hotkey === r.author);
      if (uid < 0) refuse('not-registered', `${r.author} holds no UID on subnet ${job.netuid}`);
      if (!sub.permits[uid]) refuse('no-permit', `UID ${uid} holds no validator permit on subnet ${job.netuid}`);
      if (r.author === job.client) refuse('bad-audit', 'a client may not audit its own job');
      if (shard.status !== 'result')
        refuse('bad-audit', `shard ${k} of job ${r.body.job} is ${shard.status}: no result waits for an audit`);
      if (shard.miner === r.author) refuse('bad-audit', 'a miner may not audit its own shard');
      if (shard.resultsHash !== r.body.resultsHash)
        refuse('bad-audit', `the audit names results ${r.body.resultsHash}, but ${shard.resultsHash} were published`);
      if (r.body.pass) {
        const pay = shardPayment(job, k);
        job.paid += pay;
        credit(state, shard.miner!, pay + shard.bond!);
        job.shardStates[k] = { status: 'paid', miner: shard.miner!, resultsHash: shard.resultsHash! };
      } else forfeit(state, job, k, r.block);
      return closeIfDone(state, r.body.job, r.block);
    }
    case 'job.cancel': {
      const job = liveJob(state, r.body.job);
      if (r.author !== job.client) refuse('not-client', `only ${job.client} may cancel job ${r.body.job}`);
      if (job.cancelled) refuse('job-closed', `job ${r.body.job} was cancelled already`);
      if (r.block >= job.deadline)
        refuse('job-closed', `job ${r.body.job} passed its deadline (block ${job.deadline}); it settles by itself`);
      job.cancelled = true;
      job.shardStates.forEach((s, k) => s.status === 'open' && refundShard(state, job, k));
      return closeIfDone(state, r.body.job, r.block);
    }
  }
}

function openJob(state: LedgerState, config: NetworkConfig, r: Extract<JobRecord, { kind: 'job.open' }>, id: string) {
  const b = r.body;
  const subnet = findSubnet(config, b.netuid);
  if (!subnet) refuse('unknown-subnet', `there is no subnet ${b.netuid}`);
  if (subnet!.model !== b.model) refuse('wrong-model', `subnet ${b.netuid} serves ${subnet!.model}, not ${b.model}`);
  const latest = r.block + MAX_JOB_EPOCHS * epochBlocks(config);
  if (b.deadline <= r.block || b.deadline > latest)
    refuse('bad-deadline', `the deadline must be after block ${r.block} and at most ${latest}; it is ${b.deadline}`);
  const open = Object.values(state.jobs);
  const mine = open.filter((j) => j.client === r.author).length;
  if (mine >= MAX_OPEN_JOBS_PER_CLIENT)
    refuse('job-limit', `${r.author} has ${mine} open jobs; at most ${MAX_OPEN_JOBS_PER_CLIENT}`);
  if (open.length >= MAX_OPEN_JOBS) refuse('job-limit', `${open.length} jobs are open; at most ${MAX_OPEN_JOBS}`);
  const price = BigInt(b.price);
  const deposit = price * BigInt(b.requests);
  const have = state.balances[r.author] ?? 0n;
  if (have < deposit) refuse('overspend', `the balance is ${have} rao; the job's deposit is ${deposit}`);
  state.balances[r.author] = have - deposit;
  state.jobs[id] = {
    client: r.author,
    netuid: b.netuid,
    model: b.model,
    requests: b.requests,
    shards: b.shards,
    inputHash: b.inputHash,
    price,
    maxTokens: b.maxTokens,
    deadline: b.deadline,
    openedAt: r.block,
    deposit,
    paid: 0n,
    refunded: 0n,
    forfeited: 0n,
    cancelled: false,
    shardStates: Array.from({ length: b.shards }, () => ({ status: 'open' as const })),
  };
}

/**
 * The first block at which time changes `job`: a claim lapses (`until`), the deadline passes over shards nobody
 * holds, or the job settles.
 */
export function jobEvent(config: NetworkConfig, job: JobState): number {
  let next = Infinity;
  for (const s of job.shardStates) {
    if (s.status === 'claimed') next = Math.min(next, s.until!);
    else if (s.status === 'open') next = Math.min(next, job.deadline);
    else if (s.status === 'result') next = Math.min(next, settleBlock(config, job));
  }
  return next;
}

/**
 * What time does to the jobs `ids` (all open jobs by default) up to block `block`, before any record of that
 * block: claims whose `until` has come lapse (the bond is destroyed, the shard reopens); once the deadline has
 * come, shards nobody holds are refunded; at the settle block, results nobody audited are refunded to the client
 * and their bonds returned. Jobs go in id order; a job with nothing due is left as it is. Returns the
 * settlements of the jobs this closed.
 */
export function advanceJobs(
  state: LedgerState,
  config: NetworkConfig,
  block: number,
  ids: readonly string[] = Object.keys(state.jobs),
): JobSettlement[] {
  const settled: JobSettlement[] = [];
  for (const id of [...ids].sort()) {
    const job = state.jobs[id];
    if (!job) continue;
    const settles = block >= settleBlock(config, job);
    let changed = false;
    job.shardStates.forEach((s, k) => {
      if (s.status === 'claimed' && block >= s.until!) {
        forfeit(state, job, k, block);
        changed = true;
      } else if (s.status === 'open' && block >= job.deadline) {
        refundShard(state, job, k);
        changed = true;
      } else if (s.status === 'result' && settles) {
        credit(state, s.miner!, s.bond!);
        refundShard(state, job, k);
        changed = true;
      }
    });
    const done = changed ? closeIfDone(state, id, block) : undefined;
    if (done) settled.push(done);
  }
  return settled;
}

/**
 * The replay's index of when each open job next changes with time, so that a record of a block at which nothing
 * is due costs one comparison, and a job record rescans only its own job. Not part of the state: it is rebuilt
 * from the state, and advancing only the jobs it finds due does exactly what `advanceJobs` on all of them does.
 */
export class JobClock {
  private readonly next = new Map<string, number>();
  private soonest = Infinity;

  constructor(state: LedgerState, config: NetworkConfig) {
    for (const [id, job] of Object.entries(state.jobs)) this.next.set(id, jobEvent(config, job));
    this.settle();
  }

  /** After a record touched job `id` (opened, claimed, closed it...). */
  touch(state: LedgerState, config: NetworkConfig, id: string): void {
    const job = state.jobs[id];
    if (job) this.next.set(id, jobEvent(config, job));
    else this.next.delete(id);
    this.settle();
  }

  /** Everything due up to `block`, as `advanceJobs`; returns the settlements. */
  advance(state: LedgerState, config: NetworkConfig, block: number): JobSettlement[] {
    if (block < this.soonest) return [];
    const due = [...this.next].filter(([, at]) => at <= block).map(([id]) => id);
    const settled = advanceJobs(state, config, block, due);
    for (const id of due) {
      const job = state.jobs[id];
      if (job) this.next.set(id, jobEvent(config, job));
      else this.next.delete(id);
    }
    this.settle();
    return settled;
  }

  private settle(): void {
    this.soonest = Infinity;
    for (const at of this.next.values()) if (at < this.soonest) this.soonest = at;
  }
}

const JOB_ID = /^[0-9a-f]{64}$/;

/** Whether `id` may name a job in a state path. */
export const isJobId = (id: string): boolean => JOB_ID.test(id);

const big = (v: unknown, what: string): bigint => {
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new Error(`${what}: expected a decimal string`);
  return BigInt(v);
};

/** A job back from its state-text JSON (bigints as decimal strings); throws on a job out of shape. */
export function jobFromJson(v: unknown, path: string): JobState {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${path}: expected an object`);
  const o = v as Record<string, unknown>;
  const shards = o.shardStates;
  if (!Array.isArray(shards) || shards.length !== o.shards) throw new Error(`${path}: expected one state per shard`);
  const job = {
    ...(o as unknown as JobState),
    price: big(o.price, path),
    deposit: big(o.deposit, path),
    paid: big(o.paid, path),
    refunded: big(o.refunded, path),
    forfeited: big(o.forfeited, path),
    shardStates: shards.map((s: Record<string, unknown>) =>
      s.bond === undefined
        ? (s as unknown as ShardState)
        : { ...(s as unknown as ShardState), bond: big(s.bond, path) },
    ),
  };
  for (const f of ['client', 'netuid', 'model', 'requests', 'inputHash', 'maxTokens', 'deadline', 'openedAt'])
    if (!(f in o)) throw new Error(`${path}: the job has no ${f}`);
  if (typeof o.cancelled !== 'boolean') throw new Error(`${path}: the job has no cancelled flag`);
  return job;
}
