/**
 * The ledger state and how one record changes it. The state is a pure function of the config and the records
 * replayed in canonical order (replay.ts): every honest node that holds the same records holds the same state.
 * A record that fails a check here throws RecordRefused and changes nothing (checks run before any write).
 */
import canonicalize from 'canonicalize';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { findSubnet, type NetworkConfig, type SubnetConfig } from './config.ts';
import { epochOf } from './config.ts';
import { proofOfWorkBits } from './pow.ts';
import { applyJobRecord, type JobSettlement, type JobState } from './jobs.ts';
import { RecordRefused, recordId, type LedgerRecord } from './records.ts';
import { StateDigest } from './state-text.ts';

export interface UidSlot {
  hotkey: string;
  role: 'miner' | 'validator';
  registeredAt: number;
  /** Block of the last weights accepted from this UID (its registration block before any). */
  lastUpdate: number;
}

export interface SubnetState {
  netuid: number;
  /** Index = uid. */
  uids: UidSlot[];
  /** Each UID's last accepted weights (uids ascending, raw u16 values as sent), or null. */
  weights: ({ uids: number[]; values: number[] } | null)[];
  /** Weight commits by hotkey, at most one per epoch; each is revealed in the epoch after its own. */
  commits: Record<string, { epoch: number; hash: string; block: number }[]>;
  /** Validator permits by uid, computed when the last epoch closed; they apply until the next close. */
  permits: boolean[];
  /** Bonds per UID row from the last epoch, as [uid, u16] pairs. */
  bonds: [number, number][][];
  /** Each UID's emission in the last epoch (rao); registration replaces the lowest. */
  lastEmission: bigint[];
  /** The next epoch to close. */
  epoch: number;
  /** What a registration burns now, rao, and the proof-of-work bits it needs (both set at each close). */
  burn: bigint;
  difficulty: number;
  /** Registrations in the epoch so far, and in the block of the last one (at most maxPerBlock). */
  registrationsThisEpoch: number;
  lastRegistration: { block: number; count: number };
}

export interface LedgerState {
  /** Free balance by account (peer id), rao. */
  balances: Record<string, bigint>;
  /** Stake by hotkey, then by the account that staked it (the nominator; the hotkey itself for its own). */
  stakes: Record<string, Record<string, bigint>>;
  /** Each author's chain head: its last accepted record's sequence number and block. */
  chains: Record<string, { seq: number; block: number }>;
  /** Authors caught signing two records with one sequence number, from that record on: nothing more counts. */
  frozen: Record<string, { seq: number; block: number }>;
  /** Votes and finality of the recent checkpoints (not part of stateRoot: it follows from the records). */
  checkpoints: CheckpointTally[];
  /** The last final epoch, or -1 before the first. */
  lastFinal: number;
  /**
   * The last epoch made final by votes (more than 2/3 of a non-zero permitted stake); epochs without voters are
   * final at once, but only votes close the door to late records (a node that has not synced the stake yet
   * sees no voters, and must still take the records that would show them).
   */
  lastVotedFinal: number;
  subnets: SubnetState[];
  /** Everything emission ever created, rao: equals what it paid out plus `dust`. */
  issued: bigint;
  /** Rounding remainders of emission, kept aside explicitly. */
  dust: bigint;
  /** Everything registrations burnt, rao (destroyed: no account holds it). */
  burned: bigint;
  /** Open batch jobs by id (the id of the `job.open` record), with their escrow and shards (docs/jobs.md). */
  jobs: Record<string, JobState>;
  /** Every job bond forfeited (failed audits, lapsed claims), rao (destroyed: no account holds it). */
  forfeited: bigint;
}

/** One epoch's checkpoint as this replay computed it, who may vote on it, and the votes so far. */
export interface CheckpointTally {
  epoch: number;
  recordsRoot: string;
  stateRoot: string;
  previous: string;
  /** checkpointHash of the above: what a vote must name to agree. */
  hash: string;
  /** Hotkeys with a permit in the epoch (permits set when the previous epoch closed), and their stake. */
  voters: Record<string, bigint>;
  permittedStake: bigint;
  /** Each voter's vote: the checkpoint hash it signed and the block of its record. */
  votes: Record<string, { hash: string; block: number }>;
  agreeingStake: bigint;
  final: boolean;
  /** The block of the vote that made it final (its close block when there were no voters). */
  finalAt: number | null;
}

export function initialState(config: NetworkConfig): LedgerState {
  return {
    balances: Object.fromEntries(Object.entries(config.initialBalances).map(([k, v]) => [k, BigInt(v)])),
    stakes: {},
    chains: {},
    frozen: {},
    checkpoints: [],
    lastFinal: -1,
    lastVotedFinal: -1,
    subnets: [...config.subnets]
      .sort((a, b) => a.netuid - b.netuid)
      .map((s) => ({
        burn: BigInt(s.registration.minBurn),
        difficulty: s.registrationDifficulty,
        registrationsThisEpoch: 0,
        lastRegistration: { block: -1, count: 0 },
        netuid: s.netuid,
        uids: [],
        weights: [],
        commits: {},
        permits: [],
        bonds: [],
        lastEmission: [],
        epoch: 0,
      })),
    issued: 0n,
    dust: 0n,
    burned: 0n,
    jobs: {},
    forfeited: 0n,
  };
}

export function subnetState(state: LedgerState, netuid: number): SubnetState {
  return state.subnets.find((s) => s.netuid === netuid)!;
}

export function totalStake(state: LedgerState, hotkey: string): bigint {
  let t = 0n;
  for (const v of Object.values(state.stakes[hotkey] ?? {})) t += v;
  return t;
}

/**
 * Validator permits: the `maxValidators` UIDs with the most stake (ties to the lower uid), among those with
 * stake at or above the threshold. Computed when an epoch closes; they apply during the next one (as subtensor).
 */
export function permits(state: LedgerState, cfg: SubnetConfig): boolean[] {
  const sub = subnetState(state, cfg.netuid);
  const threshold = BigInt(cfg.yuma.stakeThreshold);
  const stakes = sub.uids.map((u) => totalStake(state, u.hotkey));
  const ranked = stakes
    .map((s, uid) => ({ s, uid }))
    .filter((x) => x.s > 0n && x.s >= threshold)
    .sort((a, b) => (a.s === b.s ? a.uid - b.uid : a.s > b.s ? -1 : 1))
    .slice(0, cfg.maxValidators);
  const out = stakes.map(() => false);
  for (const { uid } of ranked) out[uid] = true;
  return out;
}

export function uidOf(state: LedgerState, netuid: number, hotkey: string): number {
  return subnetState(state, netuid).uids.findIndex((u) => u.hotkey === hotkey);
}

/** The hash a weights.commit carries: sha256 of the canonical {netuid, uids, values, salt}. */
export function weightsCommitHash(w: { netuid: number; uids: number[]; values: number[]; salt: string }): string {
  return bytesToHex(sha256(new TextEncoder().encode(canonicalize(w)!)));
}

const refuse = (code: ConstructorParameters<typeof RecordRefused>[0], message: string): never => {
  throw new RecordRefused(code, message);
};

function debit(map: Record<string, bigint>, key: string, amount: bigint, what: string) {
  const have = map[key] ?? 0n;
  if (have < amount) refuse('overspend', `${what} is ${have} rao; the record spends ${amount}`);
}

/**
 * The author-chain rules, before anything else: an author's records count in sequence (each exactly one after
 * its last), never with an earlier block than the one before, and not at all from an equivocation on. A record
 * whose sequence number was already used by another record is an equivocation: it is refused and the author is
 * frozen (docs/ledger.md, "Author chains"). Mutates only `frozen`, and only when it refuses.
 */
function checkChain(state: LedgerState, r: LedgerRecord): void {
  const frozen = state.frozen[r.author];
  if (frozen)
    refuse('equivocated-author', `${r.author} signed two records with sequence ${frozen.seq}; nothing it signs counts`);
  const head = state.chains[r.author] ?? { seq: 0, block: 0 };
  if (r.seq <= head.seq) {
    state.frozen[r.author] = { seq: r.seq, block: r.block };
    refuse('equivocation', `sequence ${r.seq} of ${r.author} was already used by another record; the author is frozen`);
  }
  if (r.seq !== head.seq + 1)
    refuse('sequence-gap', `sequence ${r.seq} does not follow ${head.seq}, the author's last (a record is missing)`);
  if (r.block < head.block)
    refuse('backdated', `block ${r.block} is before block ${head.block} of the author's previous record`);
}

/** Refusals that keep a record out of its author's chain (it takes no place there, and no root covers it). */
export const CHAIN_REFUSALS: ReadonlySet<string> = new Set([
  'equivocated-author',
  'equivocation',
  'sequence-gap',
  'backdated',
]);

/**
 * Apply one record (already through checkRecord) to `state`. A record that breaks its author's chain throws one
 * of CHAIN_REFUSALS and changes nothing (but an equivocation freezes its author). A record that passes the chain
 * takes its place there, like a nonce, even if what it does is then refused (overspend, no permit...): it
 * throws RecordRefused having changed nothing else. Job records need the state advanced to their block
 * (`advanceJobs`, as the replay does); one that closes its job returns the job's settlement. `id` is the record's
 * id (computed when not given: a job's id is its opening record's).
 */
export function applyRecord(
  state: LedgerState,
  config: NetworkConfig,
  r: LedgerRecord,
  id?: string,
): JobSettlement | undefined {
  checkChain(state, r);
  state.chains[r.author] = { seq: r.seq, block: r.block };
  switch (r.kind) {
    case 'job.open':
    case 'job.claim':
    case 'job.result':
    case 'job.audit':
    case 'job.cancel':
      return applyJobRecord(state, config, r, id ?? recordId(r));
    case 'register':
      register(state, config, r);
      break;
    case 'weights.commit':
    case 'weights.reveal':
    case 'weights.set':
      setWeights(state, config, r);
      break;
    case 'stake.add': {
      const amount = BigInt(r.body.amount);
      debit(state.balances, r.author, amount, 'the balance');
      // The hotkey need not be registered yet: within one block, records apply in author order, so a stake sent
      // right after a registration could otherwise be refused or not depending on two keys' spelling. Stake on
      // an unregistered hotkey simply counts once it registers.
      state.balances[r.author] = state.balances[r.author]! - amount;
      const stakes = (state.stakes[r.body.hotkey] ??= {});
      stakes[r.author] = (stakes[r.author] ?? 0n) + amount;
      break;
    }
    case 'stake.remove': {
      const amount = BigInt(r.body.amount);
      debit(state.stakes[r.body.hotkey] ?? {}, r.author, amount, `the author's stake on ${r.body.hotkey}`);
      state.stakes[r.body.hotkey]![r.author] = state.stakes[r.body.hotkey]![r.author]! - amount;
      state.balances[r.author] = (state.balances[r.author] ?? 0n) + amount;
      break;
    }
    case 'transfer': {
      const amount = BigInt(r.body.amount);
      debit(state.balances, r.author, amount, 'the balance');
      state.balances[r.author] = state.balances[r.author]! - amount;
      state.balances[r.body.to] = (state.balances[r.body.to] ?? 0n) + amount;
      break;
    }
    case 'faucet.claim': {
      const faucet = config.faucet;
      if (!faucet) refuse('no-faucet', `network ${config.networkId} has no faucet`);
      const amount = BigInt(r.body.amount);
      if (amount > BigInt(faucet!.maxClaim)) refuse('overspend', `a claim is at most ${faucet!.maxClaim} rao`);
      debit(state.balances, faucet!.account, amount, "the faucet's balance");
      state.balances[faucet!.account] = state.balances[faucet!.account]! - amount;
      state.balances[r.author] = (state.balances[r.author] ?? 0n) + amount;
      break;
    }
    case 'checkpoint':
      voteCheckpoint(state, r);
      break;
  }
  return undefined;
}

/** The hash a checkpoint vote names: sha256 of its domain-separated canonical body and network. */
export function checkpointHash(
  network: string,
  c: { epoch: number; recordsRoot: string; stateRoot: string; previous: string },
): string {
  const text = canonicalize({
    network,
    epoch: c.epoch,
    recordsRoot: c.recordsRoot,
    stateRoot: c.stateRoot,
    previous: c.previous,
  })!;
  return bytesToHex(sha256(new TextEncoder().encode(`webtensor/checkpoint/1\n${text}`)));
}

/** What checkpoint 0 chains to: the hash of the network config every node starts from. */
export function genesisHash(config: NetworkConfig): string {
  return bytesToHex(sha256(new TextEncoder().encode(`webtensor/genesis/1\n${canonicalize(config)!}`)));
}

export function tallyOf(state: LedgerState, epoch: number): CheckpointTally | undefined {
  return state.checkpoints.find((c) => c.epoch === epoch);
}

/**
 * A vote: counted if the author had a permit in that epoch and has not voted on it yet; it agrees when it names
 * the same checkpoint this node computed. More than 2/3 of the permitted stake agreeing, with the previous
 * checkpoint final, makes the epoch final.
 */
function voteCheckpoint(state: LedgerState, r: Extract<LedgerRecord, { kind: 'checkpoint' }>) {
  const tally = tallyOf(state, r.body.epoch);
  if (!tally || tally.hash === '')
    refuse('bad-checkpoint', `epoch ${r.body.epoch} has not closed, or is too old to vote on`);
  if (!(r.author in tally!.voters)) refuse('no-permit', `${r.author} had no validator permit in epoch ${r.body.epoch}`);
  if (tally!.votes[r.author]) refuse('bad-checkpoint', `${r.author} already voted on epoch ${r.body.epoch}`);
  const hash = checkpointHash(r.network, r.body);
  tally!.votes[r.author] = { hash, block: r.block };
  if (hash === tally!.hash) tally!.agreeingStake += tally!.voters[r.author]!;
  settleFinality(state, r.block);
}

/**
 * Settle finality after a vote. A checkpoint whose agreeing votes hold more than 2/3 of its (non-zero) permitted
 * stake is final, and so is every checkpoint before it: a vote names a hash that chains, through `previous`, to
 * all of history before, so agreeing on it agrees on all of that too (finality never waits on one lost epoch).
 * Without votes nothing is final: an epoch nobody could vote on stays open until a later one is voted final.
 */
export function settleFinality(state: LedgerState, block: number): void {
  const closed = state.checkpoints.filter((t) => t.hash !== '');
  const voted = closed.filter((t) => t.permittedStake > 0n && t.agreeingStake * 3n > t.permittedStake * 2n).at(-1);
  if (!voted || voted.epoch <= state.lastVotedFinal) return;
  for (const t of closed)
    if (t.epoch <= voted.epoch && !t.final) {
      t.final = true;
      t.finalAt = block;
    }
  state.lastFinal = state.lastVotedFinal = voted.epoch;
}

/** Epochs back a registration's proof of work may be bound to (so it cannot be computed further in advance). */
export const RECENT_CHECKPOINT_EPOCHS = 4;

/** The checkpoint hashes a proof of work of a record at `block` may be bound to: those of recent closes. */
export function recentCheckpoints(state: LedgerState, config: NetworkConfig, block: number): string[] {
  const epoch = epochOf(config, block);
  const recent = state.checkpoints.filter((t) => t.hash !== '' && t.epoch >= epoch - RECENT_CHECKPOINT_EPOCHS);
  return [...recent.map((t) => t.hash), ...(epoch < RECENT_CHECKPOINT_EPOCHS ? [genesisHash(config)] : [])];
}

/**
 * Registration (docs/ledger.md, "Registration"): at most `maxPerBlock` per block; a proof of work bound to a
 * recent checkpoint with the difficulty the price rule has reached; the author burns the current price. Then a
 * free UID, or the non-immune UID with the lowest emission is replaced.
 */
function register(state: LedgerState, config: NetworkConfig, r: Extract<LedgerRecord, { kind: 'register' }>) {
  const cfg = findSubnet(config, r.body.netuid)!;
  const sub = subnetState(state, cfg.netuid);
  if (sub.uids.some((u) => u.hotkey === r.author))
    refuse('already-registered', `${r.author} already holds a UID on subnet ${cfg.netuid}`);
  const inBlock = sub.lastRegistration.block === r.block ? sub.lastRegistration.count : 0;
  if (inBlock >= cfg.registration.maxPerBlock)
    refuse('registration-limit', `subnet ${cfg.netuid} took ${inBlock} registrations in block ${r.block} already`);
  if (!recentCheckpoints(state, config, r.block).includes(r.body.checkpoint))
    refuse(
      'stale-proof',
      `the proof of work is not bound to a checkpoint of the last ${RECENT_CHECKPOINT_EPOCHS} epochs`,
    );
  const bits = proofOfWorkBits(config.networkId, r);
  if (bits < sub.difficulty)
    refuse('bad-pow', `the proof of work reaches ${bits} bits; subnet ${cfg.netuid} asks ${sub.difficulty}`);
  if (BigInt(r.body.maxBurn) < sub.burn)
    refuse('underpriced', `registration costs ${sub.burn} rao now; the record offers at most ${r.body.maxBurn}`);
  debit(state.balances, r.author, sub.burn, 'the balance');
  const slot: UidSlot = { hotkey: r.author, role: r.body.role, registeredAt: r.block, lastUpdate: r.block };
  const pay = () => {
    if (sub.burn > 0n) state.balances[r.author] = state.balances[r.author]! - sub.burn;
    state.burned += sub.burn;
    sub.registrationsThisEpoch++;
    sub.lastRegistration = { block: r.block, count: inBlock + 1 };
  };
  if (sub.uids.length < cfg.maxUids) {
    pay();
    sub.uids.push(slot);
    sub.weights.push(null);
    sub.bonds.push([]);
    sub.lastEmission.push(0n);
    sub.permits.push(false);
    return;
  }
  // Full: replace the non-immune UID with the lowest emission (ties: the older registration, then the lower uid).
  let victim = -1;
  sub.uids.forEach((u, uid) => {
    if (r.block - u.registeredAt < cfg.immunityPeriod) return;
    if (victim < 0) return void (victim = uid);
    const [a, b] = [sub.lastEmission[uid]!, sub.lastEmission[victim]!];
    if (a < b || (a === b && u.registeredAt < sub.uids[victim]!.registeredAt)) victim = uid;
  });
  if (victim < 0) refuse('subnet-full', `subnet ${cfg.netuid} is full and every UID is still immune`);
  pay();
  delete sub.commits[sub.uids[victim]!.hotkey];
  sub.uids[victim] = slot;
  sub.weights[victim] = null;
  sub.permits[victim] = false;
  sub.lastEmission[victim] = 0n;
  sub.bonds = sub.bonds.map((row, i) => (i === victim ? [] : row.filter(([j]) => j !== victim)));
}

function setWeights(
  state: LedgerState,
  config: NetworkConfig,
  r: Extract<LedgerRecord, { kind: 'weights.commit' | 'weights.reveal' | 'weights.set' }>,
) {
  const cfg = findSubnet(config, r.body.netuid)!;
  const sub = subnetState(state, cfg.netuid);
  const uid = sub.uids.findIndex((u) => u.hotkey === r.author);
  if (uid < 0) refuse('not-registered', `${r.author} holds no UID on subnet ${cfg.netuid}`);
  if (!sub.permits[uid])
    refuse('no-permit', `UID ${uid} had no validator permit when the last epoch closed on subnet ${cfg.netuid}`);
  const epoch = Math.floor(r.block / cfg.tempo);
  const firstHalf = r.block % cfg.tempo < cfg.tempo / 2;
  if (r.kind === 'weights.set' && cfg.commitReveal)
    refuse('wrong-window', `subnet ${cfg.netuid} uses commit-reveal: send weights.commit, then weights.reveal`);
  if (r.kind !== 'weights.set' && !cfg.commitReveal)
    refuse('wrong-window', `subnet ${cfg.netuid} does not use commit-reveal: send weights.set`);
  if (r.kind === 'weights.commit') {
    if (!firstHalf) refuse('wrong-window', 'weights are committed in the first half of an epoch');
    const kept = (sub.commits[r.author] ?? []).filter((c) => c.epoch !== epoch);
    sub.commits[r.author] = [...kept, { epoch, hash: r.body.hash, block: r.block }];
    return;
  }
  const { uids, values } = r.body;
  if (uids.length !== values.length) refuse('bad-weights', `${uids.length} uids but ${values.length} values`);
  if (uids.some((u) => u >= sub.uids.length)) refuse('bad-weights', `a uid is beyond the subnet's ${sub.uids.length}`);
  if (r.kind === 'weights.reveal') {
    // Commit in epoch e, reveal in the second half of e + 1, and only if e was final before that half began:
    // nobody can commit a copy of weights revealed by others once they are public (docs/ledger.md, "Finality").
    if (firstHalf) refuse('wrong-window', 'weights are revealed in the second half of an epoch');
    const commit = sub.commits[r.author]?.find((c) => c.epoch === epoch - 1);
    if (!commit) refuse('bad-reveal', `there is no commit from epoch ${epoch - 1} to reveal`);
    const revealOpens = epoch * cfg.tempo + Math.ceil(cfg.tempo / 2);
    const committed = tallyOf(state, epoch - 1);
    if (!committed?.final || committed.finalAt === null || committed.finalAt >= revealOpens)
      refuse(
        'not-final',
        `epoch ${epoch - 1}, which holds the commit, was not final when reveals opened at ${revealOpens}`,
      );
    if (weightsCommitHash({ netuid: cfg.netuid, uids, values, salt: r.body.salt }) !== commit!.hash)
      refuse('bad-reveal', 'the revealed weights do not match the commit');
    sub.commits[r.author] = sub.commits[r.author]!.filter((c) => c !== commit);
  }
  sub.weights[uid] = { uids: [...uids], values: [...values] };
  sub.uids[uid]!.lastUpdate = r.block;
}

/**
 * Who votes on the epoch after the last close: hotkeys with a permit on any subnet, with their stake. A frozen
 * author's votes cannot count, so its stake is left out of the permitted stake too.
 */
export function nextVoters(state: LedgerState): Record<string, bigint> {
  const voters: Record<string, bigint> = {};
  for (const sub of state.subnets)
    sub.uids.forEach((u, uid) => {
      if (sub.permits[uid] && !state.frozen[u.hotkey]) voters[u.hotkey] = totalStake(state, u.hotkey);
    });
  return voters;
}

const sha256Hex = (text: string) => bytesToHex(sha256(new TextEncoder().encode(text)));

/** sha256 of a voter set's canonical JSON (stakes as decimal strings). */
export function votersHash(voters: Readonly<Record<string, bigint | string>>): string {
  return sha256Hex(canonicalize(Object.fromEntries(Object.entries(voters).map(([k, v]) => [k, String(v)])))!);
}

/**
 * The stateRoot from its two parts: the hash of the next epoch's voter set and the hash of the state's text.
 * Split so that a joining node can learn who votes on the next checkpoint from a checkpoint it verified without
 * downloading each epoch's state (as a light client follows NextValidatorsHash in Tendermint headers).
 */
export function rootOf(voters: string, body: string): string {
  return sha256Hex(`webtensor/state/2\n${voters}\n${body}`);
}

/**
 * The stateRoot: the whole state, including the checkpoint tallies as they stand when the epoch closes (the
 * closing epoch's own tally has no roots yet, so nothing names itself), because the votes in them decide what
 * later epochs accept: a node continuing from a downloaded state must hold them exactly.
 */
export function stateRoot(state: LedgerState): string {
  return rootOf(votersHash(nextVoters(state)), new StateDigest().digest(state).bodyHash);
}

/**
 * The parts of a stateRoot, for the chain a joining node follows: the state's text, its body hash (state-text.ts)
 * and the next voters. Pass the replay's `digest` so that a close rehashes only what changed since the last.
 */
export function stateRootParts(
  state: LedgerState,
  digest = new StateDigest(),
): { text: string; bodyHash: string; voters: Record<string, string> } {
  const { text, bodyHash } = digest.digest(state);
  const voters = Object.fromEntries(Object.entries(nextVoters(state)).map(([k, v]) => [k, v.toString()]));
  return { text, bodyHash, voters };
}
