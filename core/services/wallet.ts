/**
 * The wallet: what this node's key holds and earns, and the records it signs to move τ: send, stake on a
 * validator (nominate), unstake, and draw test τ from the faucet. Every amount is typed τ parsed to rao exactly
 * (shared/ledger/amounts.ts); every request is checked here before anything is signed, so a bad one gets a
 * sentence naming the problem and no record exists. What it shows is read from the latest replay: balances,
 * stakes, the payouts of closed epochs, and the state of each record this key signed (pending, final, refused).
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { AmountError, parseTao, taoText } from '../../shared/ledger/amounts.ts';
import type { Admission } from '../../shared/ledger/admission.ts';
import { epochBlocks, type NetworkConfig } from '../../shared/ledger/config.ts';
import type { LedgerRecord } from '../../shared/ledger/records.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { NodeError } from '../../shared/errors.ts';
import type { ReadableStore } from '../store.ts';
import type { RecordBook } from './record-book.ts';

export interface WalletComponents {
  book: Pick<RecordBook, 'publish' | 'self' | 'mine'>;
  network: NetworkConfig;
  snapshot: ReadableStore<LedgerSnapshot | null>;
  admission: Pick<Admission, 'spendable'>;
}

/** A record this key signed, and where it stands. */
export interface WalletRecord {
  id: string;
  kind: LedgerRecord['kind'];
  seq: number;
  block: number;
  body: LedgerRecord['body'];
  /** final: in an epoch final by votes, and not refused; refused: the replay refused it (reason given). */
  status: 'pending' | 'final' | 'refused';
  reason: { code: string; message: string } | null;
}

/** A validator a nominator could stake on, from the latest replay and the final epochs before it. */
export interface ValidatorRow {
  netuid: number;
  uid: number;
  hotkey: string;
  /** Total stake (own and nominated), rao. */
  stake: bigint;
  /** The share of its dividends it keeps before its nominators' shares (u16 of 65535). */
  take: number;
  validatorTrust: number;
  validatorPermit: boolean;
  nominators: { account: string; stake: bigint }[];
  /** Its dividends (rao) in each of the last final epochs, oldest first. */
  dividends: { epoch: number; rao: bigint }[];
  /**
   * An estimate, from final epochs only: what its nominators were paid per epoch per τ they staked (rao per τ),
   * the mean over the last final epochs; null before any.
   */
  estimatedRaoPerTaoPerEpoch: number | null;
}

export type WalletAction = 'transfer' | 'stake' | 'unstake' | 'faucet';
type Prepared =
  | { kind: 'transfer'; body: { to: string; amount: string } }
  | { kind: 'stake.add' | 'stake.remove'; body: { hotkey: string; amount: string } }
  | { kind: 'faucet.claim'; body: { amount: string } };

/** Final epochs a validator row and the return estimate look back over. */
export const EPOCHS_SHOWN = 12;

const refuse = (message: string): never => {
  throw new NodeError('bad-input', message);
};

/** Rao from typed τ, or a NodeError('bad-input') with AmountError's sentence. */
function amountOf(text: string): bigint {
  try {
    return parseTao(text);
  } catch (err) {
    if (err instanceof AmountError) refuse(err.message);
    throw err;
  }
}

function peerIdOf(text: string, what: string): string {
  const t = text.trim();
  try {
    return peerIdFromString(t).toString();
  } catch {
    return refuse(`${what} "${t.slice(0, 60)}" is not a peer id (they look like 12D3KooW…).`);
  }
}

export class Wallet {
  constructor(private readonly components: WalletComponents) {}

  get self(): string {
    return this.components.book.self;
  }

  private get snapshot(): LedgerSnapshot | null {
    return this.components.snapshot.get();
  }

  /** Free balance in the last replay, rao. */
  balance(): bigint {
    return this.snapshot?.balances[this.self] ?? 0n;
  }

  /** What this key may still spend: the balance net of its records not replayed yet. */
  spendable(): bigint {
    return this.components.admission.spendable(this.self);
  }

  /** This key's stake on each hotkey (its own included), rao. */
  stakes(): { hotkey: string; amount: bigint }[] {
    const nominations = this.snapshot?.nominations ?? {};
    return Object.entries(nominations)
      .map(([hotkey, by]) => ({ hotkey, amount: by[this.self] ?? 0n }))
      .filter((s) => s.amount > 0n)
      .sort((a, b) => (a.hotkey < b.hotkey ? -1 : 1));
  }

  /**
   * What this key earned in each closed epoch the replay holds: as a nominator (its shares of validators'
   * dividends) and as a hotkey (the emission of its own UIDs), rao.
   */
  earnings(): { epoch: number; nominated: bigint; own: bigint; final: boolean }[] {
    const snap = this.snapshot;
    const byEpoch = new Map<number, { nominated: bigint; own: bigint }>();
    for (const e of snap?.epochs ?? []) {
      const row = byEpoch.get(e.epoch) ?? { nominated: 0n, own: 0n };
      for (const n of e.nominators ?? []) if (n.account === this.self) row.nominated += BigInt(n.amount);
      for (const u of e.uids) if (u.hotkey === this.self) row.own += BigInt(u.emission);
      byEpoch.set(e.epoch, row);
    }
    return [...byEpoch]
      .sort(([a], [b]) => a - b)
      .map(([epoch, r]) => ({ epoch, ...r, final: epoch <= (snap?.lastVotedFinal ?? -1) }));
  }

  /** Every record this key signed that the store holds, newest first, with its state. */
  async history(): Promise<WalletRecord[]> {
    const snap = this.snapshot;
    const tempo = epochBlocks(this.components.network);
    const finalThrough = ((snap?.lastVotedFinal ?? -1) + 1) * tempo;
    const rows = await this.components.book.mine();
    return rows
      .map(({ id, record }) => {
        const refused = snap?.refused[id] ?? null;
        return {
          id,
          kind: record.kind,
          seq: record.seq,
          block: record.block,
          body: record.body,
          status: refused ? 'refused' : record.block < finalThrough ? 'final' : 'pending',
          reason: refused,
        } satisfies WalletRecord;
      })
      .sort((a, b) => b.seq - a.seq);
  }

  /** Hotkeys holding a UID on some subnet, with their subnet and role. */
  private registered(): Map<string, { netuid: number; uid: number; role: string }> {
    const out = new Map<string, { netuid: number; uid: number; role: string }>();
    for (const sub of this.snapshot?.subnets ?? [])
      sub.uids.forEach((u, uid) => out.set(u.hotkey, { netuid: sub.netuid, uid, role: u.role }));
    return out;
  }

  private checkFunds(amount: bigint, what: string): void {
    const spendable = this.spendable();
    if (amount > spendable)
      refuse(
        `${what} needs ${format(amount)}, but this key can spend ${format(spendable)} (after its records not yet counted).`,
      );
  }

  /**
   * The record an action would sign, after every check: for `transfer` the target is the recipient, for `stake`
   * and `unstake` the hotkey, for `faucet` nothing. Throws NodeError('bad-input') naming what is wrong; signs
   * nothing either way (a page checks with it before asking to confirm).
   */
  prepare(action: WalletAction, target: string, amountText: string): Prepared {
    if (action === 'faucet') {
      const faucet = this.components.network.faucet;
      if (!faucet) refuse(`${this.components.network.networkId} has no faucet; only test networks do.`);
      const amount = amountOf(amountText);
      const most = BigInt(faucet!.maxClaim);
      if (amount > most) refuse(`The faucet gives at most ${format(most)} per claim.`);
      return { kind: 'faucet.claim', body: { amount: amount.toString() } };
    }
    if (action === 'transfer') {
      const to = peerIdOf(target, 'The recipient');
      const amount = amountOf(amountText);
      if (to === this.self) refuse('The recipient is this key itself: sending to yourself moves nothing.');
      this.checkFunds(amount, 'Sending');
      return { kind: 'transfer', body: { to, amount: amount.toString() } };
    }
    const hotkey = peerIdOf(target, 'The hotkey');
    const amount = amountOf(amountText);
    if (action === 'stake') {
      if (!this.registered().has(hotkey))
        refuse(
          `${hotkey} holds no UID on any subnet: stake only on a registered hotkey (a validator, to nominate it).`,
        );
      this.checkFunds(amount, 'Staking');
      return { kind: 'stake.add', body: { hotkey, amount: amount.toString() } };
    }
    const held = this.snapshot?.nominations[hotkey]?.[this.self] ?? 0n;
    if (held === 0n) refuse(`This key has no stake on ${hotkey}.`);
    if (amount > held) refuse(`This key has ${format(held)} staked on ${hotkey}, less than ${format(amount)}.`);
    return { kind: 'stake.remove', body: { hotkey, amount: amount.toString() } };
  }

  private sign(p: Prepared): Promise<LedgerRecord> {
    return this.components.book.publish(p.kind, p.body as never);
  }

  /** Send `amountText` τ to `toText` (a peer id). Resolves with the signed record once it is stored. */
  async transfer(toText: string, amountText: string): Promise<LedgerRecord> {
    return this.sign(this.prepare('transfer', toText, amountText));
  }

  /** Stake `amountText` τ on `hotkeyText`, a registered hotkey (a validator, to nominate it). */
  async stake(hotkeyText: string, amountText: string): Promise<LedgerRecord> {
    return this.sign(this.prepare('stake', hotkeyText, amountText));
  }

  /** Take `amountText` τ of this key's stake off `hotkeyText`, back to the free balance. */
  async unstake(hotkeyText: string, amountText: string): Promise<LedgerRecord> {
    return this.sign(this.prepare('unstake', hotkeyText, amountText));
  }

  /** Test networks only: draw `amountText` τ of test τ from the faucet (at most the network's per-claim limit). */
  async faucet(amountText: string): Promise<LedgerRecord> {
    return this.sign(this.prepare('faucet', '', amountText));
  }

  /** The validators of every subnet, highest stake first. */
  validators(): ValidatorRow[] {
    const snap = this.snapshot;
    if (!snap) return [];
    const take = this.components.network.delegateTake;
    const final = snap.epochs.filter((e) => e.epoch <= snap.lastVotedFinal);
    const rows: ValidatorRow[] = [];
    for (const sub of snap.subnets) {
      const recent = final.filter((e) => e.netuid === sub.netuid).slice(-EPOCHS_SHOWN);
      sub.uids.forEach((u, uid) => {
        if (u.role !== 'validator') return;
        const last = recent.at(-1)?.uids[uid];
        const nominators = Object.entries(snap.nominations[u.hotkey] ?? {})
          .filter(([account, s]) => account !== u.hotkey && s > 0n)
          .map(([account, stake]) => ({ account, stake }));
        const dividends = recent.map((e) => ({
          epoch: e.epoch,
          rao: e.uids[uid]?.hotkey === u.hotkey ? BigInt(e.uids[uid]!.dividendsRao ?? '0') : 0n,
        }));
        // Paid to nominators per τ they staked, per epoch (final epochs that paid any nominator of it).
        const rates = recent
          .map((e) => (e.nominators ?? []).filter((n) => n.hotkey === u.hotkey))
          .filter((paid) => paid.length > 0)
          .map((paid) => {
            const staked = paid.reduce((s, n) => s + BigInt(n.stake), 0n);
            const amount = paid.reduce((s, n) => s + BigInt(n.amount), 0n);
            return staked > 0n ? Number((amount * 1_000_000_000n * 1_000_000n) / staked) / 1_000_000 : 0;
          });
        rows.push({
          netuid: sub.netuid,
          uid,
          hotkey: u.hotkey,
          stake: snap.stakes[u.hotkey] ?? 0n,
          take,
          validatorTrust: last?.hotkey === u.hotkey ? last.validatorTrust : 0,
          validatorPermit: sub.permits[uid] ?? false,
          nominators,
          dividends,
          estimatedRaoPerTaoPerEpoch: rates.length > 0 ? rates.reduce((a, b) => a + b, 0) / rates.length : null,
        });
      });
    }
    return rows.sort((a, b) => (b.stake > a.stake ? 1 : b.stake < a.stake ? -1 : a.uid - b.uid));
  }
}

const format = (rao: bigint) => `${taoText(rao)} τ`;
