/**
 * The ledger state and how one record changes it. The state is a pure function of the config and the records
 * replayed in canonical order (replay.ts): every honest node that holds the same records holds the same state.
 * A record that fails a check here throws RecordRefused and changes nothing (checks run before any write).
 */
import canonicalize from 'canonicalize';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { findSubnet, type NetworkConfig, type SubnetConfig } from './config.ts';
import { RecordRefused, type LedgerRecord } from './records.ts';

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
  /** Open weight commits by hotkey. */
  commits: Record<string, { hash: string; block: number }>;
  /** Bonds per UID row from the last epoch, as [uid, u16] pairs. */
  bonds: [number, number][][];
  /** Each UID's emission in the last epoch (rao); registration replaces the lowest. */
  lastEmission: bigint[];
  /** The next epoch to close. */
  epoch: number;
}

export interface LedgerState {
  /** Free balance by account (peer id), rao. */
  balances: Record<string, bigint>;
  /** Stake by hotkey, then by the account that staked it (the nominator; the hotkey itself for its own). */
  stakes: Record<string, Record<string, bigint>>;
  /** Last accepted sequence number by author. */
  seqs: Record<string, number>;
  subnets: SubnetState[];
  /** Everything emission ever created, rao: equals what it paid out plus `dust`. */
  issued: bigint;
  /** Rounding remainders of emission, kept aside explicitly. */
  dust: bigint;
}

export function initialState(config: NetworkConfig): LedgerState {
  return {
    balances: Object.fromEntries(Object.entries(config.initialBalances).map(([k, v]) => [k, BigInt(v)])),
    stakes: {},
    seqs: {},
    subnets: [...config.subnets]
      .sort((a, b) => a.netuid - b.netuid)
      .map((s) => ({ netuid: s.netuid, uids: [], weights: [], commits: {}, bonds: [], lastEmission: [], epoch: 0 })),
    issued: 0n,
    dust: 0n,
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
 * stake at or above the threshold. Permits take effect at once (subtensor applies them one epoch later).
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

/** Apply one record (already through checkRecord) to `state`, or throw RecordRefused and leave it unchanged. */
export function applyRecord(state: LedgerState, config: NetworkConfig, r: LedgerRecord): void {
  if (r.seq <= (state.seqs[r.author] ?? 0))
    refuse('replay', `sequence ${r.seq} is not after ${state.seqs[r.author] ?? 0}, the author's last`);
  switch (r.kind) {
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
  }
  state.seqs[r.author] = r.seq;
}

function register(state: LedgerState, config: NetworkConfig, r: Extract<LedgerRecord, { kind: 'register' }>) {
  const cfg = findSubnet(config, r.body.netuid)!;
  const sub = subnetState(state, cfg.netuid);
  if (sub.uids.some((u) => u.hotkey === r.author))
    refuse('already-registered', `${r.author} already holds a UID on subnet ${cfg.netuid}`);
  const slot: UidSlot = { hotkey: r.author, role: r.body.role, registeredAt: r.block, lastUpdate: r.block };
  if (sub.uids.length < cfg.maxUids) {
    sub.uids.push(slot);
    sub.weights.push(null);
    sub.bonds.push([]);
    sub.lastEmission.push(0n);
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
  delete sub.commits[sub.uids[victim]!.hotkey];
  sub.uids[victim] = slot;
  sub.weights[victim] = null;
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
  if (!permits(state, cfg)[uid]) refuse('no-permit', `UID ${uid} has no validator permit on subnet ${cfg.netuid}`);
  const epoch = Math.floor(r.block / cfg.tempo);
  const firstHalf = r.block % cfg.tempo < cfg.tempo / 2;
  if (r.kind === 'weights.set' && cfg.commitReveal)
    refuse('wrong-window', `subnet ${cfg.netuid} uses commit-reveal: send weights.commit, then weights.reveal`);
  if (r.kind !== 'weights.set' && !cfg.commitReveal)
    refuse('wrong-window', `subnet ${cfg.netuid} does not use commit-reveal: send weights.set`);
  if (r.kind === 'weights.commit') {
    if (!firstHalf) refuse('wrong-window', 'weights are committed in the first half of an epoch');
    sub.commits[r.author] = { hash: r.body.hash, block: r.block };
    return;
  }
  const { uids, values } = r.body;
  if (uids.length !== values.length) refuse('bad-weights', `${uids.length} uids but ${values.length} values`);
  if (uids.some((u) => u >= sub.uids.length)) refuse('bad-weights', `a uid is beyond the subnet's ${sub.uids.length}`);
  if (r.kind === 'weights.reveal') {
    const commit = sub.commits[r.author];
    if (firstHalf) refuse('wrong-window', 'weights are revealed in the second half of an epoch');
    if (!commit || Math.floor(commit.block / cfg.tempo) !== epoch)
      refuse('bad-reveal', 'there is no commit from this epoch to reveal');
    if (weightsCommitHash({ netuid: cfg.netuid, uids, values, salt: r.body.salt }) !== commit!.hash)
      refuse('bad-reveal', 'the revealed weights do not match the commit');
    delete sub.commits[r.author];
  }
  sub.weights[uid] = { uids: [...uids], values: [...values] };
  sub.uids[uid]!.lastUpdate = r.block;
}

/** Canonical JSON of the state (bigints as decimal strings), and its sha256: the stateRoot. */
export function stateRoot(state: LedgerState): string {
  const text = canonicalize(
    JSON.parse(JSON.stringify(state, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))),
  )!;
  return bytesToHex(sha256(new TextEncoder().encode(text)));
}
