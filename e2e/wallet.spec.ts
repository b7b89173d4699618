/**
 * The wallet, as a person uses it: a tab opens /wallet on a test network with a headless validator (staked from
 * the faucet) and two headless miners. Through the page only, it gets test τ, is refused (with a sentence, and
 * nothing signed) for every bad amount and recipient, nominates the validator, and over the next final epochs
 * is paid exactly its share of the validator's dividends after the take, by the ledger's own numbers; unstaking
 * gives the stake back to the free balance.
 */
import { expect, test, type Locator, type Page } from '@playwright/test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { stopProcess } from './support/processes.ts';

const relay = new RelayProcess(9760, 9761, undefined, ['--network', 'test']);
const VALIDATOR_PORT = 9762;
const MINER_PORTS = [9763, 9764];
const root = mkdtempSync(join(tmpdir(), 'wallet-e2e-'));
const children: ChildProcess[] = [];
const TAO = 1_000_000_000n;

test.setTimeout(420_000);

function node(name: string, port: number, ...extra: string[]): void {
  const child = spawn(
    process.execPath,
    [
      ...['--import', 'tsx', 'core/nodejs/cli.ts', '--relay', relay.healthUrl],
      ...['--data', join(root, name), '--status-port', String(port), ...extra],
    ],
    { stdio: 'ignore' },
  );
  children.push(child);
}

const statusOf = (port: number) =>
  fetch(`http://127.0.0.1:${port}/status`)
    .then((r) => r.json() as Promise<{ peerId: string; uid: number | null }>)
    .catch(() => null);

test.beforeAll(async () => {
  await relay.start();
  node('validator', VALIDATOR_PORT, '--role', 'validator', '--faucet-stake', '1000000000000');
  for (const [k, port] of MINER_PORTS.entries()) node(`miner-${k}`, port, '--role', 'miner');
});

test.afterAll(async () => {
  await Promise.all(children.map((c) => stopProcess(c)));
  await relay.stop();
});

/** Read the wallet through the automation API (the page shows the same numbers). */
const wallet = (page: Page) =>
  page.evaluate(() => ({
    balance: window.webtensor.wallet.balance,
    stakes: window.webtensor.wallet.stakes,
    records: window.webtensor.ledger.records,
  }));
const historyLength = (page: Page) => page.evaluate(async () => (await window.webtensor.wallet.history()).length);

/** Fill fields by their labels, then press the button named `button` inside `scope` (a form or the page). */
async function submit(page: Page, fields: [string, string][], button: string, scope: Locator = page.locator('body')) {
  for (const [label, value] of fields) await page.getByLabel(label).fill(value);
  await scope.getByRole('button', { name: button, exact: true }).click();
}

async function confirm(page: Page) {
  await expect(page.getByTestId('wallet-confirm')).toBeVisible();
  await page.getByRole('button', { name: 'Confirm and sign' }).click();
  await expect(page.getByTestId('wallet-message')).toContainText('Signed and sent');
}

test('get test τ, be refused for bad input, nominate, be paid exactly, unstake: all from /wallet', async ({ page }) => {
  await page.goto(`/wallet?relay=${encodeURIComponent(relay.healthUrl)}`);
  await expect(page.getByTestId('wallet-holdings')).toBeVisible({ timeout: 60_000 });
  const me = (await page.getByTestId('wallet-key').textContent())!;

  // Test τ from the faucet, through the page.
  await submit(page, [['test τ to draw', '100']], 'Get test τ');
  await confirm(page);
  await expect.poll(async () => (await wallet(page)).balance, { timeout: 60_000 }).toBe((100n * TAO).toString());
  await expect(page.getByTestId('wallet-balance')).toHaveText('100 τ');

  // Every bad input is refused in the form with a sentence, and nothing is signed.
  const signed = await historyLength(page);
  await expect.poll(async () => (await statusOf(VALIDATOR_PORT))?.uid ?? null, { timeout: 120_000 }).not.toBeNull();
  const validator = (await statusOf(VALIDATOR_PORT))!.peerId;
  const someone = (await statusOf(MINER_PORTS[0]!))!.peerId;
  const bad: [string, string, RegExp][] = [
    [someone, '100.5', /can spend 100 τ/],
    [someone, '0', /more than zero/],
    [someone, '-3', /must be positive/],
    [someone, '1.0000000001', /at most 9 decimals/],
    [someone, 'ten', /not an amount/],
    ['12D3KooWnot-a-peer-id', '1', /not a peer id/],
    [me, '1', /this key itself/],
  ];
  for (const [to, amount, message] of bad) {
    await submit(
      page,
      [
        ['recipient peer id', to],
        ['amount to send', amount],
      ],
      'Send…',
    );
    await expect(page.getByTestId('wallet-message')).toHaveText(message);
    await expect(page.getByTestId('wallet-confirm')).toHaveCount(0);
  }
  // A hotkey that holds no UID (the page lists only validators; the API is refused the same way).
  const unregistered = await page.evaluate(
    (hk) =>
      window.webtensor.wallet.stake(hk, '1').then(
        () => 'signed',
        (e: Error) => e.message,
      ),
    peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString(),
  );
  expect(unregistered).toMatch(/holds no UID on any subnet/);
  expect(await historyLength(page)).toBe(signed);

  // Nominate the validator from its row.
  const row = page.locator(`[data-testid="wallet-validators"] tr[data-hotkey="${validator}"]`);
  await expect(row).toBeVisible({ timeout: 60_000 });
  await row.getByRole('button', { name: 'Stake…' }).click();
  const form = page.getByTestId('wallet-stake-form');
  await submit(page, [['amount to stake or unstake', '50']], 'Stake…', form);
  await confirm(page);
  await expect
    .poll(async () => (await wallet(page)).stakes.find((s) => s.hotkey === validator)?.amount ?? '0', {
      timeout: 60_000,
    })
    .not.toBe('0');

  // Over the next final epochs it is paid exactly (dividends − take) × its stake ÷ the validator's stake.
  const paidFinal = () =>
    page.evaluate(
      ({ me, v }) => {
        const final = window.webtensor.ledger.summaries.filter(
          (e) =>
            e.epoch <=
            window.webtensor.ledger.epochs
              .filter((a) => a.final)
              .map((a) => a.epoch)
              .at(-1)!,
        );
        return final
          .flatMap((e) => e.nominators.filter((n) => n.account === me && n.hotkey === v).map((n) => ({ e, n })))
          .map(({ e, n }) => {
            const u = e.uids.find((x) => x.hotkey === v)!;
            return {
              epoch: e.epoch,
              stake: n.stake,
              amount: n.amount,
              dividends: u.dividendsRao,
              take: u.take,
              total: u.stake,
            };
          });
      },
      { me, v: validator },
    );
  await expect
    .poll(async () => (await paidFinal()).filter((p) => BigInt(p.amount) > 0n).length, { timeout: 240_000 })
    .toBeGreaterThanOrEqual(2);
  const payouts = await paidFinal();
  for (const p of payouts)
    expect(BigInt(p.amount), `epoch ${p.epoch}`).toBe(
      ((BigInt(p.dividends) - BigInt(p.take)) * BigInt(p.stake)) / BigInt(p.total),
    );
  // Its stake is what it staked plus every payout (of every closed epoch, final or not).
  const all = await page.evaluate(
    ({ me, v }) =>
      window.webtensor.ledger.summaries
        .flatMap((e) => e.nominators)
        .filter((n) => n.account === me && n.hotkey === v)
        .map((n) => n.amount),
    { me, v: validator },
  );
  const stakeNow = BigInt((await wallet(page)).stakes.find((s) => s.hotkey === validator)!.amount);
  expect(stakeNow).toBe(50n * TAO + all.reduce((s, a) => s + BigInt(a), 0n));
  await expect(page.getByRole('heading', { name: 'Earnings per epoch' })).toBeVisible();

  // Unstaking gives the stake back to the free balance.
  const before = await wallet(page);
  await row.getByRole('button', { name: 'Stake…' }).click();
  await submit(page, [['amount to stake or unstake', '10']], 'Unstake…', form);
  await confirm(page);
  await expect
    .poll(async () => BigInt((await wallet(page)).balance), { timeout: 60_000 })
    .toBe(BigInt(before.balance) + 10n * TAO);
  const history = await page.evaluate(() => window.webtensor.wallet.history());
  expect(history.map((r) => r.kind).slice(0, 3)).toEqual(['stake.remove', 'stake.add', 'faucet.claim']);
  expect(history.every((r) => r.status !== 'refused')).toBe(true);
  await page.screenshot({ path: test.info().outputPath('wallet.png'), fullPage: true });
});
