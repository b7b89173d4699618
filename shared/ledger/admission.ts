/**
 * Admission: the state checks a record passes on arrival, before it is stored or forwarded (docs/ledger.md,
 * "Admission"). `checkRecord` (records.ts) proves a record is well formed and signed; admission asks whether it
 * can do anything: transfers and stakes funded by the author's balance net of its pending records, weights and
 * votes only from registered hotkeys with a permit, at most a quota of records per author per block. The replay
 * stays the judge of what a record does; admission only keeps out what the replay would certainly refuse, so
 * that a peer cannot fill every node's disk with validly signed junk.
 *
 * It reads a view of the last replay and counts the effect of every record admitted since ("pending") until a
 * newer replay includes it. Memory is bounded: pending records per author and in all, and the per-block quota
 * counters, are capped and pruned by block.
 */
import { epochBlocks, findSubnet, type NetworkConfig } from './config.ts';
import {
  MAX_JOB_EPOCHS,
  MAX_OPEN_JOBS,
  MAX_OPEN_JOBS_PER_CLIENT,
  settleBlock,
  shardBond,
  type JobState,
} from './jobs.ts';
import { RecordRefused, type LedgerRecord, type RefusalCode } from './records.ts';

/** Records one author may have admitted in one block (an honest node signs a handful at most). */
export const RECORDS_PER_AUTHOR_PER_BLOCK = 6;
/** Records of one author admitted and not yet replayed (beyond it, the author waits for the next replay). */
export const MAX_PENDING_PER_AUTHOR = 64;
/** Records admitted and not yet replayed, from all authors. */
export const MAX_PENDING = 20_000;

/** What admission needs of the last replay: a small part of the ledger state. */
export interface AdmissionView {
  /** The block the replay closed epochs through (epochs ending after it have not closed in this view). */
  closeThrough: number;
  balances: Readonly<Record<string, bigint>>;
  /** Stake by hotkey, then by the account that staked it. */
  nominations: Readonly<Record<string, Readonly<Record<string, bigint>>>>;
  chains: Readonly<Record<string, { seq: number; block: number }>>;
  frozen: Readonly<Record<string, unknown>>;
  subnets: readonly {
    netuid: number;
    uids: readonly { hotkey: string }[];
    permits: readonly boolean[];
  }[];
  /** The recent checkpoints, who may vote on each, and who has (a view without `voted` admits a second vote). */
  checkpoints: readonly { epoch: number; voters: readonly string[]; voted?: readonly string[] }[];
  /** The open batch jobs (docs/jobs.md). A view without them admits job records on funding and quotas alone. */
  jobs?: Readonly<Record<string, JobState>>;
}

/** What admission needs of a job: its terms, from the view or from a pending `job.open`. */
type JobTerms = Pick<JobState, 'client' | 'netuid' | 'requests' | 'shards' | 'price' | 'deadline' | 'cancelled'>;

/** What an admitted record does that the next records of the same accounts must see. */
interface Pending {
  id: string;
  author: string;
  seq: number;
  block: number;
  /** Balance changes by account (negative: spent). */
  balance: Map<string, bigint>;
  /** What the author pays, before anything comes back to it (a transfer to itself still needs the funds). */
  spend: bigint;
  /** Stake removed: hotkey -> amount, for the author. */
  unstaked: Map<string, bigint>;
  /** Subnets this record registers the author on. */
  registers: number | null;
  /** The job this record opens (its id is the record's). */
  opens: JobTerms | null;
  /** The epoch this record votes on (a `checkpoint`). */
  votes: number | null;
}

/** Refusals that may come from this node's view being behind (not the sender's fault): gossip ignores them. */
export const UNCERTAIN_REFUSALS: ReadonlySet<RefusalCode> = new Set([
  'future-block',
  'stale-block',
  'final',
  'sequence-gap',
  // A job record may overtake the client's `job.open` (another author's record), or race its cancel or settlement.
  'unknown-job',
  'job-closed',
  // Which of a voter's two votes on an epoch arrives first differs by node: the forwarder of the other is not at fault.
  'second-vote',
]);

const refuse = (code: RefusalCode, message: string): never => {
  throw new RecordRefused(code, message);
};

export class Admission {
  private view: AdmissionView | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly byAuthor = new Map<string, Pending[]>();
  /** The pending records' balance changes summed by account (each admission reads it: no scan of all pending). */
  private readonly pendingBalance = new Map<string, bigint>();
  /** Records admitted per author and block, kept across replays (a replay does not reset a quota). */
  private readonly perBlock = new Map<number, Map<string, number>>();
  /** Authors whose equivocation was admitted since the last replay (the replay then freezes them). */
  private readonly equivocated = new Set<string>();

  constructor(private readonly config: NetworkConfig) {}

  /** A new replay: its view replaces the old, and records it includes are no longer pending. */
  rebase(view: AdmissionView): void {
    this.view = view;
    this.equivocated.clear();
    for (const [author, list] of this.byAuthor) {
      const head = view.chains[author]?.seq ?? 0;
      const kept = list.filter((p) => p.seq > head);
      for (const p of list) if (p.seq <= head) this.drop(p);
      if (kept.length) this.byAuthor.set(author, kept);
      else this.byAuthor.delete(author);
    }
  }

  /** Forget quota counters of blocks before `block` (nothing of them arrives any more). */
  prune(block: number): void {
    for (const b of this.perBlock.keys()) if (b < block) this.perBlock.delete(b);
    // Pending records that no replay took (refused out of their chain, say) stop counting after two epochs.
    const old = block - 2 * epochBlocks(this.config);
    for (const p of [...this.pending.values()]) if (p.block < old) this.forget(p);
  }

  /** Forget pending records by id (dropped from the store: a final checkpoint this node adopted lacks them). */
  forgetIds(ids: readonly string[]): void {
    for (const id of ids) {
      const p = this.pending.get(id);
      if (p) this.forget(p);
    }
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Admit `record` (already through checkRecord) or throw RecordRefused naming why. Without a view (before
   * the first replay) only the quota applies: a node that knows nothing cannot judge funding.
   */
  admit(record: LedgerRecord, id: string): void {
    if (this.pending.has(id)) return;
    const { author } = record;
    const blockCounts = this.perBlock.get(record.block);
    const used = blockCounts?.get(author) ?? 0;
    if (used >= RECORDS_PER_AUTHOR_PER_BLOCK)
      refuse(
        'quota',
        `${author} already has ${used} records in block ${record.block}; at most ${RECORDS_PER_AUTHOR_PER_BLOCK}`,
      );
    const mine = this.byAuthor.get(author) ?? [];
    if (mine.length >= MAX_PENDING_PER_AUTHOR)
      refuse(
        'quota',
        `${author} has ${mine.length} records waiting for the next replay; at most ${MAX_PENDING_PER_AUTHOR}`,
      );
    if (this.pending.size >= MAX_PENDING) refuse('quota', `${MAX_PENDING} records are waiting for the next replay`);
    const pending = this.view ? this.check(this.view, record, id, mine) : effectOf(record, id, this.config);
    this.pending.set(id, pending);
    for (const [account, delta] of pending.balance) this.addPendingBalance(account, delta);
    this.byAuthor.set(author, [...mine, pending]);
    const counts = blockCounts ?? new Map<string, number>();
    counts.set(author, used + 1);
    this.perBlock.set(record.block, counts);
  }

  private forget(p: Pending): void {
    this.drop(p);
    const rest = (this.byAuthor.get(p.author) ?? []).filter((q) => q !== p);
    if (rest.length) this.byAuthor.set(p.author, rest);
    else this.byAuthor.delete(p.author);
  }

  /** What `account` may still spend: its balance in the last replay, net of its records not replayed yet. */
  spendable(account: string): bigint {
    return this.view ? this.balance(this.view, account) : 0n;
  }

  /** The free balance of `account` after the view and every pending record. */
  private balance(view: AdmissionView, account: string): bigint {
    return (view.balances[account] ?? 0n) + (this.pendingBalance.get(account) ?? 0n);
  }

  /** Take a record out of the pending set and its effect out of the running totals. */
  private drop(p: Pending): void {
    if (!this.pending.delete(p.id)) return;
    for (const [account, delta] of p.balance) this.addPendingBalance(account, -delta);
  }

  private addPendingBalance(account: string, delta: bigint): void {
    const total = (this.pendingBalance.get(account) ?? 0n) + delta;
    if (total === 0n) this.pendingBalance.delete(account);
    else this.pendingBalance.set(account, total);
  }

  private check(view: AdmissionView, r: LedgerRecord, id: string, mine: readonly Pending[]): Pending {
    if (view.frozen[r.author])
      refuse('equivocated-author', `${r.author} signed two records with one sequence number; nothing it signs counts`);
    const head = view.chains[r.author]?.seq ?? 0;
    // A second record with a sequence number already taken is an equivocation: it is the evidence every node
    // must see (the replay freezes the author), so it is admitted; its effects are not counted.
    if (this.equivocated.has(r.author))
      refuse('equivocated-author', `${r.author} signed two records with one sequence number; nothing it signs counts`);
    if (r.seq <= head || mine.some((p) => p.seq === r.seq)) {
      this.equivocated.add(r.author);
      return {
        ...effectOf(r, id, this.config),
        balance: new Map(),
        unstaked: new Map(),
        registers: null,
        opens: null,
        votes: null,
        spend: 0n,
      };
    }
    // Its funds may come from a predecessor not here yet (gossip can reorder): judge it when the chain is whole.
    const held = new Set(mine.map((p) => p.seq));
    for (let seq = head + 1; seq < r.seq; seq++)
      if (!held.has(seq)) refuse('sequence-gap', `sequence ${seq} of ${r.author} has not arrived before ${r.seq}`);
    const effect = effectOf(r, id, this.config);
    const tempo = epochBlocks(this.config);
    // Permits change when an epoch closes: a record of an epoch this view has not closed may hold one we do not see.
    const permitsMayChange = Math.floor(r.block / tempo) > Math.floor(view.closeThrough / tempo);
    switch (r.kind) {
      case 'job.open': {
        const latest = r.block + MAX_JOB_EPOCHS * tempo;
        if (r.body.deadline <= r.block || r.body.deadline > latest)
          refuse('bad-deadline', `the deadline must be after block ${r.block} and at most ${latest}`);
        if (view.jobs) {
          const open = Object.values(view.jobs);
          const mineOpen = open.filter((j) => j.client === r.author).length + mine.filter((p) => p.opens).length;
          if (mineOpen >= MAX_OPEN_JOBS_PER_CLIENT)
            refuse(
              'job-limit',
              `${r.author} has ${mineOpen} open jobs (with pending ones); at most ${MAX_OPEN_JOBS_PER_CLIENT}`,
            );
          if (open.length >= MAX_OPEN_JOBS)
            refuse('job-limit', `${open.length} jobs are open; at most ${MAX_OPEN_JOBS}`);
        }
        this.funded(view, r.author, effect.spend);
        break;
      }
      case 'job.claim':
      case 'job.result':
      case 'job.audit':
      case 'job.cancel': {
        if (!view.jobs) break;
        const job = view.jobs[r.body.job] ?? this.pending.get(r.body.job)?.opens;
        if (!job) refuse('unknown-job', `there is no open job ${r.body.job}`);
        if ('shard' in r.body && r.body.shard >= job!.shards)
          refuse('bad-shard', `job ${r.body.job} has ${job!.shards} shards; there is no shard ${r.body.shard}`);
        if (r.kind === 'job.cancel') {
          if (r.author !== job!.client) refuse('not-client', `only ${job!.client} may cancel job ${r.body.job}`);
          if (job!.cancelled || r.block >= job!.deadline) refuse('job-closed', `job ${r.body.job} takes no cancel`);
        } else if (r.kind === 'job.audit') {
          if (r.block >= settleBlock(this.config, job!))
            refuse('job-closed', `job ${r.body.job} settled at block ${settleBlock(this.config, job!)}`);
          if (r.author === job!.client) refuse('bad-audit', 'a client may not audit its own job');
          const sub = view.subnets.find((s) => s.netuid === job!.netuid);
          const uid = sub?.uids.findIndex((u) => u.hotkey === r.author) ?? -1;
          if (uid < 0 && !permitsMayChange)
            refuse('not-registered', `${r.author} holds no UID on subnet ${job!.netuid}`);
          if (uid >= 0 && !sub!.permits[uid] && !permitsMayChange)
            refuse('no-permit', `UID ${uid} has no validator permit on subnet ${job!.netuid}`);
        } else {
          if (job!.cancelled && r.kind === 'job.claim') refuse('job-closed', `job ${r.body.job} was cancelled`);
          if (r.block >= job!.deadline) refuse('job-closed', `job ${r.body.job} passed its deadline`);
        }
        if (r.kind === 'job.claim') {
          const sub = view.subnets.find((s) => s.netuid === job!.netuid);
          const registering = mine.some((p) => p.registers === job!.netuid);
          if (!registering && !sub?.uids.some((u) => u.hotkey === r.author))
            refuse('not-registered', `${r.author} holds no UID on subnet ${job!.netuid}`);
          // The bond, from the balance like any spend (effectOf cannot price it without the job).
          const bond = shardBond(job!, r.body.shard);
          this.funded(view, r.author, bond);
          effect.spend = bond;
          effect.balance.set(r.author, -bond);
        }
        break;
      }
      case 'transfer':
      case 'stake.add':
      case 'register': {
        const have = this.balance(view, r.author);
        if (effect.spend > have)
          refuse(
            'overspend',
            `${r.author} has ${have} rao (net of pending records); the record spends ${effect.spend}`,
          );
        break;
      }
      case 'stake.remove': {
        let staked = view.nominations[r.body.hotkey]?.[r.author] ?? 0n;
        for (const p of mine) staked -= p.unstaked.get(r.body.hotkey) ?? 0n;
        if (BigInt(r.body.amount) > staked)
          refuse('overspend', `${r.author} has ${staked} rao staked on ${r.body.hotkey} (net of pending records)`);
        break;
      }
      case 'faucet.claim': {
        const faucet = this.config.faucet;
        if (!faucet) refuse('no-faucet', `network ${this.config.networkId} has no faucet`);
        if (BigInt(r.body.amount) > BigInt(faucet!.maxClaim))
          refuse('overspend', `a claim is at most ${faucet!.maxClaim} rao`);
        if (BigInt(r.body.amount) > this.balance(view, faucet!.account)) refuse('overspend', 'the faucet is empty');
        break;
      }
      case 'weights.commit':
      case 'weights.reveal':
      case 'weights.set': {
        const sub = view.subnets.find((s) => s.netuid === r.body.netuid);
        const uid = sub?.uids.findIndex((u) => u.hotkey === r.author) ?? -1;
        const registering = mine.some((p) => p.registers === r.body.netuid);
        if (uid < 0 && !registering) refuse('not-registered', `${r.author} holds no UID on subnet ${r.body.netuid}`);
        if (uid >= 0 && !sub!.permits[uid] && !permitsMayChange)
          refuse('no-permit', `UID ${uid} has no validator permit on subnet ${r.body.netuid}`);
        if (uid < 0 && !permitsMayChange) refuse('no-permit', `${r.author} registered too late to hold a permit`);
        const cfg = findSubnet(this.config, r.body.netuid)!;
        if ('uids' in r.body && sub && r.body.uids.some((u) => u >= Math.max(sub.uids.length, cfg.maxUids)))
          refuse('bad-weights', `a uid is beyond subnet ${r.body.netuid}'s ${cfg.maxUids}`);
        break;
      }
      case 'checkpoint': {
        const closed = Math.floor(view.closeThrough / tempo) - 1;
        if (r.body.epoch > closed + 1 || r.body.epoch < closed - 16)
          refuse('bad-checkpoint', `epoch ${r.body.epoch} is not a recent epoch (this node closed ${closed})`);
        const permitted =
          view.checkpoints.some((c) => c.epoch === r.body.epoch && c.voters.includes(r.author)) ||
          view.subnets.some((s) => s.permits[s.uids.findIndex((u) => u.hotkey === r.author)]) ||
          (permitsMayChange && view.subnets.some((s) => s.uids.some((u) => u.hotkey === r.author)));
        if (!permitted) refuse('no-permit', `${r.author} may not vote on epoch ${r.body.epoch}`);
        // One vote per voter and epoch: the replay counts one, so another is not stored (nor takes a chain place).
        if (
          view.checkpoints.some((c) => c.epoch === r.body.epoch && c.voted?.includes(r.author)) ||
          mine.some((p) => p.votes === r.body.epoch)
        )
          refuse('second-vote', `${r.author} already voted on epoch ${r.body.epoch}`);
        break;
      }
    }
    return effect;
  }

  /** Refuse `overspend` unless `account`'s balance net of pending records covers `amount`. */
  private funded(view: AdmissionView, account: string, amount: bigint): void {
    const have = this.balance(view, account);
    if (amount > have)
      refuse('overspend', `${account} has ${have} rao (net of pending records); the record spends ${amount}`);
  }
}

/** What a record would do to balances and stake if the replay accepts it. */
function effectOf(r: LedgerRecord, id: string, config: NetworkConfig): Pending {
  const balance = new Map<string, bigint>();
  const unstaked = new Map<string, bigint>();
  const add = (account: string, amount: bigint) => balance.set(account, (balance.get(account) ?? 0n) + amount);
  let registers: number | null = null;
  let opens: JobTerms | null = null;
  let votes: number | null = null;
  let spend = 0n;
  switch (r.kind) {
    case 'job.open': {
      const price = BigInt(r.body.price);
      spend = price * BigInt(r.body.requests);
      add(r.author, -spend);
      const { netuid, requests, shards, deadline } = r.body;
      opens = { client: r.author, netuid, requests, shards, price, deadline, cancelled: false };
      break;
    }
    case 'transfer':
      spend = BigInt(r.body.amount);
      add(r.author, -spend);
      add(r.body.to, spend);
      break;
    case 'stake.add':
      spend = BigInt(r.body.amount);
      add(r.author, -spend);
      break;
    case 'stake.remove':
      add(r.author, BigInt(r.body.amount));
      unstaked.set(r.body.hotkey, BigInt(r.body.amount));
      break;
    case 'faucet.claim':
      if (config.faucet) add(config.faucet.account, -BigInt(r.body.amount));
      add(r.author, BigInt(r.body.amount));
      break;
    case 'register':
      // Counted at the most it may burn: the price can only be known at its place in the replay.
      registers = r.body.netuid;
      spend = BigInt(r.body.maxBurn);
      add(r.author, -spend);
      break;
    case 'checkpoint':
      votes = r.body.epoch;
      break;
  }
  return { id, author: r.author, seq: r.seq, block: r.block, balance, unstaked, registers, opens, votes, spend };
}
