/**
 * The wallet's checks: every bad input is refused with a sentence naming it and nothing is signed; good input
 * signs exactly the record it names, in rao. Balances, stakes and history come from a real replay of signed
 * records (shared/ledger/testing.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Admission } from '../../shared/ledger/admission.ts';
import { replay, type StoredRecord } from '../../shared/ledger/replay.ts';
import { actor, claim, make, registration, smallConfig, type Actor } from '../../shared/ledger/testing.ts';
import type { LedgerRecord } from '../../shared/ledger/records.ts';
import { snapshotOf } from '../../shared/ledger/snapshot.ts';
import { Store } from '../store.ts';
import { Wallet } from './wallet.ts';

const config = smallConfig();
let me: Actor;
let validator: Actor;
let stranger: Actor;
let records: StoredRecord[];

beforeAll(async () => {
  [me, validator, stranger] = await Promise.all([actor(), actor(), actor()]);
  records = [
    await registration(config, validator, 1, 'validator'),
    await claim(config, me, 2, 5_000_000_000n),
    await make(config, me, 'stake.add', 3, { hotkey: validator.id, amount: '1000000000' }),
  ];
});

function walletOf(held: StoredRecord[]) {
  const result = replay(config, held, 10);
  const snapshot = new Store(snapshotOf(result, held.length, 10, 0));
  const admission = new Admission(config);
  admission.rebase(snapshot.get()!);
  const published: { kind: string; body: unknown }[] = [];
  const wallet = new Wallet({
    book: {
      self: me.id,
      publish: async (kind, body) => {
        published.push({ kind, body });
        return { kind, body } as unknown as LedgerRecord;
      },
      mine: async () =>
        held
          .filter((r) => r.record.author === me.id)
          .map((r) => ({
            ...r,
            network: '',
            block: r.record.block,
            author: me.id,
            kind: r.record.kind,
            source: 'self',
            receivedAt: 0,
          })),
    },
    network: config,
    snapshot,
    admission,
  });
  return { wallet, published, result };
}

describe('the wallet', () => {
  it('shows the balance, the stake and every record with its state', async () => {
    const { wallet } = walletOf(records);
    expect(wallet.balance()).toBe(4_000_000_000n);
    expect(wallet.stakes()).toEqual([{ hotkey: validator.id, amount: 1_000_000_000n }]);
    const history = await wallet.history();
    expect(history.map((r) => [r.kind, r.status])).toEqual([
      ['stake.add', 'pending'],
      ['faucet.claim', 'pending'],
    ]);
  });

  it('refuses bad input with a sentence naming it, and signs nothing', async () => {
    const { wallet, published } = walletOf(records);
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => wallet.transfer(stranger.id, '5'), /needs 5 τ, but this key can spend 4 τ/],
      [() => wallet.transfer(stranger.id, '0'), /more than zero/],
      [() => wallet.transfer(stranger.id, '-1'), /must be positive/],
      [() => wallet.transfer(stranger.id, '1.0000000001'), /at most 9 decimals/],
      [() => wallet.transfer(stranger.id, 'lots'), /not an amount/],
      [() => wallet.transfer('12D3KooWnotapeerid', '1'), /not a peer id/],
      [() => wallet.transfer('', '1'), /not a peer id/],
      [() => wallet.transfer(me.id, '1'), /this key itself/],
      [() => wallet.stake(stranger.id, '1'), /holds no UID on any subnet/],
      [() => wallet.stake('not a key', '1'), /not a peer id/],
      [() => wallet.stake(validator.id, '4.000000001'), /can spend 4 τ/],
      [() => wallet.unstake(validator.id, '2'), /has 1 τ staked on .*, less than 2 τ/],
      [() => wallet.unstake(stranger.id, '1'), /no stake on/],
      [() => wallet.faucet('10001'), /at most 10000 τ per claim/],
    ];
    for (const [act, message] of cases)
      await expect(act(), String(message)).rejects.toMatchObject({
        code: 'bad-input',
        message: expect.stringMatching(message),
      });
    expect(published).toEqual([]);
  });

  it('signs exactly what it was asked, in rao', async () => {
    const { wallet, published } = walletOf(records);
    await wallet.transfer(` ${stranger.id} `, '1.5');
    await wallet.stake(validator.id, '0.000000001');
    await wallet.unstake(validator.id, '1');
    await wallet.faucet('2');
    expect(published).toEqual([
      { kind: 'transfer', body: { to: stranger.id, amount: '1500000000' } },
      { kind: 'stake.add', body: { hotkey: validator.id, amount: '1' } },
      { kind: 'stake.remove', body: { hotkey: validator.id, amount: '1000000000' } },
      { kind: 'faucet.claim', body: { amount: '2000000000' } },
    ]);
  });

  it('lists the validator a nominator could stake on, with its nominators', () => {
    const { wallet } = walletOf(records);
    expect(wallet.validators()).toMatchObject([
      {
        hotkey: validator.id,
        uid: 0,
        take: config.delegateTake,
        nominators: [{ account: me.id, stake: 1_000_000_000n }],
      },
    ]);
  });
});
