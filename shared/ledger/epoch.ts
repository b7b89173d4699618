/**
 * Closing one subnet epoch: build Yuma's inputs from the ledger state, run shared/yuma, and pay out the epoch's
 * emission: the owner's cut to the owner's balance, miners' incentive and validators' dividends to stake (a
 * validator keeps its take and shares the rest with its nominators pro rata). Every remainder of integer
 * division goes to `dust`, so issued = paid out + dust exactly.
 */
import { runEpoch, type EpochResult, type U16Row, type YumaParams } from '../yuma/index.ts';
import { blockEmission, type NetworkConfig, type SubnetConfig } from './config.ts';
import { permits, subnetState, totalStake, type LedgerState, type SubnetState } from './state.ts';

export interface UidSummary {
  uid: number;
  hotkey: string;
  role: 'miner' | 'validator';
  stake: string;
  validatorPermit: boolean;
  active: boolean;
  consensus: number;
  incentive: number;
  dividends: number;
  validatorTrust: number;
  /** Rao paid to this UID this epoch (incentive + dividends). */
  emission: string;
  /** Of which dividends (rao), and the validator's take of them before its nominators' shares. */
  dividendsRao: string;
  take: string;
  lastUpdate: number;
  registeredAt: number;
}

export interface EpochSummary {
  netuid: number;
  epoch: number;
  /** The block at which the epoch ended. */
  block: number;
  /** Emission created for this subnet this epoch, and where it went (rao, decimal strings). */
  amount: string;
  ownerCut: string;
  paid: string;
  dust: string;
  /** Registrations the epoch took, and the price they set for the next (burn in rao, proof-of-work bits). */
  registrations: number;
  burn: string;
  difficulty: number;
  uids: UidSummary[];
  /**
   * What each nominator (an account staking on a hotkey not its own) was paid of that hotkey's dividends: its
   * stake at the epoch (the share's base) and the rao credited to its stake there.
   */
  nominators: { hotkey: string; account: string; stake: string; amount: string }[];
}

/** u16 weights scaled so the largest is 65535 (as subtensor stores them), in integers. */
function maxUpscale(values: number[]): number[] {
  const max = Math.max(0, ...values);
  if (max === 0) return values.map(() => 0);
  return values.map((v) => Number((BigInt(v) * 65535n + BigInt(max) / 2n) / BigInt(max)));
}

export function yumaParams(cfg: SubnetConfig, epoch: number, amount: bigint, ownerUid: number | null): YumaParams {
  const y = cfg.yuma;
  return {
    kappa: y.kappa,
    bondsPenalty: y.bondsPenalty,
    bondsMovingAverage: y.bondsMovingAverage,
    yuma3: y.yuma3,
    liquidAlpha: y.liquidAlpha,
    alphaLow: y.alphaLow,
    alphaHigh: y.alphaHigh,
    alphaSigmoidSteepness: y.alphaSigmoidSteepness,
    maxAllowedValidators: cfg.maxValidators,
    stakeThreshold: BigInt(y.stakeThreshold),
    activityCutoff: y.activityCutoff,
    tempo: cfg.tempo,
    lastMechanismStepBlock: epoch * cfg.tempo,
    ownerUid,
    raoEmission: amount,
    commitRevealMasking: false, // commit-reveal is enforced by the ledger's windows instead
  };
}

/** Emission created for one subnet in one epoch: its share of every block's emission (subnets share equally). */
export function epochAmount(config: NetworkConfig, cfg: SubnetConfig, epoch: number): bigint {
  let total = 0n;
  for (let b = epoch * cfg.tempo; b < (epoch + 1) * cfg.tempo; b++) total += blockEmission(config, b);
  return total / BigInt(config.subnets.length);
}

function credit(state: LedgerState, hotkey: string, account: string, amount: bigint) {
  if (amount === 0n) return;
  const stakes = (state.stakes[hotkey] ??= {});
  stakes[account] = (stakes[account] ?? 0n) + amount;
}

/** Close epoch `sub.epoch` of a subnet at its end block; mutates `state`, returns what happened. */
/**
 * The price rule, at every close (as subtensor's, per epoch): the burn is multiplied by
 * (registrations + target) / (2 * target), so it halves over an epoch without registrations, stays at target and
 * rises with demand beyond it, within [minBurn, maxBurn]; the difficulty moves one bit toward demand the same way.
 */
export function adjustRegistrationPrice(sub: SubnetState, cfg: SubnetConfig): void {
  const { targetPerEpoch: target, minBurn, maxBurn, maxDifficulty } = cfg.registration;
  const regs = sub.registrationsThisEpoch;
  const burn = (sub.burn * BigInt(regs + target)) / BigInt(2 * target);
  sub.burn = burn < BigInt(minBurn) ? BigInt(minBurn) : burn > BigInt(maxBurn) ? BigInt(maxBurn) : burn;
  const step = regs > target ? 1 : regs < target ? -1 : 0;
  sub.difficulty = Math.min(maxDifficulty, Math.max(cfg.registrationDifficulty, sub.difficulty + step));
  sub.registrationsThisEpoch = 0;
}

export function closeEpoch(state: LedgerState, config: NetworkConfig, cfg: SubnetConfig): EpochSummary {
  const sub = subnetState(state, cfg.netuid);
  const epoch = sub.epoch;
  const block = (epoch + 1) * cfg.tempo;
  sub.epoch = epoch + 1;
  // A commit of epoch e may be revealed during e + 1; older ones expire now.
  for (const [hotkey, list] of Object.entries(sub.commits)) {
    const kept = list.filter((c) => c.epoch >= epoch);
    if (kept.length > 0) sub.commits[hotkey] = kept;
    else delete sub.commits[hotkey];
  }
  const registrations = sub.registrationsThisEpoch;
  adjustRegistrationPrice(sub, cfg);
  const n = sub.uids.length;
  const summary: EpochSummary = {
    netuid: cfg.netuid,
    epoch,
    block,
    amount: '0',
    ownerCut: '0',
    paid: '0',
    dust: '0',
    registrations,
    burn: sub.burn.toString(),
    difficulty: sub.difficulty,
    uids: [],
    nominators: [],
  };
  if (n === 0) return summary; // nobody to pay: nothing is created
  // The permits this epoch ran under were set when the previous one closed (new UIDs have none yet).
  const permit = sub.uids.map((_, uid) => sub.permits[uid] ?? false);

  const amount = epochAmount(config, cfg, epoch);
  const ownerCut = (amount * BigInt(config.ownerCut)) / 65535n;
  const ownerUid = sub.uids.findIndex((u) => u.hotkey === config.owner);
  const stakes = sub.uids.map((u) => totalStake(state, u.hotkey));
  const weights: U16Row[] = sub.weights.map((w) => {
    if (!w) return [];
    const up = maxUpscale(w.values);
    return w.uids.map((uid, k) => [uid, up[k]!] as const);
  });
  const result: EpochResult = runEpoch(yumaParams(cfg, epoch, amount - ownerCut, ownerUid < 0 ? null : ownerUid), {
    currentBlock: block,
    stake: stakes,
    validatorPermit: permit,
    lastUpdate: sub.uids.map((u) => u.lastUpdate),
    blockAtRegistration: sub.uids.map((u) => u.registeredAt),
    weights,
    bonds: sub.bonds,
  });

  state.balances[config.owner] = (state.balances[config.owner] ?? 0n) + ownerCut;
  let paid = ownerCut;
  const takes: bigint[] = sub.uids.map(() => 0n);
  const nominatorPay: EpochSummary['nominators'] = [];
  sub.uids.forEach((u, uid) => {
    const server = result.serverEmission[uid]!;
    credit(state, u.hotkey, u.hotkey, server);
    paid += server;
    const dividends = result.validatorEmission[uid]!;
    if (dividends === 0n) return;
    // The validator's take, then its nominators' shares by stake; what rounding leaves stays with the validator.
    const take = (dividends * BigInt(config.delegateTake)) / 65535n;
    takes[uid] = take;
    const rest = dividends - take;
    const nominators = Object.entries(state.stakes[u.hotkey] ?? {}).filter(([, s]) => s > 0n);
    const total = stakes[uid]!;
    let shared = 0n;
    if (total > 0n)
      for (const [account, s] of nominators.sort(([a], [b]) => (a < b ? -1 : 1))) {
        if (account === u.hotkey) continue;
        const share = (rest * s) / total;
        credit(state, u.hotkey, account, share);
        shared += share;
        nominatorPay.push({ hotkey: u.hotkey, account, stake: s.toString(), amount: share.toString() });
      }
    credit(state, u.hotkey, u.hotkey, dividends - shared);
    paid += dividends;
  });
  const dust = amount - paid;
  state.issued += amount;
  state.dust += dust;
  sub.bonds = toRows(result.bonds, n);
  sub.lastEmission = result.emission.slice();
  // Permits for the next epoch, from stake after this epoch's payout.
  sub.permits = permits(state, cfg);

  summary.amount = amount.toString();
  summary.ownerCut = ownerCut.toString();
  summary.paid = paid.toString();
  summary.dust = dust.toString();
  summary.uids = sub.uids.map((u, uid) => ({
    uid,
    hotkey: u.hotkey,
    role: u.role,
    stake: stakes[uid]!.toString(),
    validatorPermit: permit[uid]!,
    active: result.active[uid]!,
    consensus: result.consensusU16[uid]!,
    incentive: result.incentiveU16[uid]!,
    dividends: result.dividendsU16[uid]!,
    validatorTrust: result.validatorTrustU16[uid]!,
    emission: result.emission[uid]!.toString(),
    dividendsRao: result.validatorEmission[uid]!.toString(),
    take: takes[uid]!.toString(),
    lastUpdate: u.lastUpdate,
    registeredAt: u.registeredAt,
  }));
  summary.nominators = nominatorPay;
  return summary;
}

function toRows(m: EpochResult['bonds'], n: number): [number, number][][] {
  const rows: [number, number][][] = [];
  for (let i = 0; i < n; i++) {
    const row: [number, number][] = [];
    if (i < m.rows) for (let k = m.ptr[i]!; k < m.ptr[i + 1]!; k++) row.push([m.col[k]!, m.val[k]!]);
    rows.push(row);
  }
  return rows;
}
