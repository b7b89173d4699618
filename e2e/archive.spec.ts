/**
 * History outlives every tab: a headless archive node (`npm run node -- --role client --archive`, a real child
 * process with its ledger in SQLite) keeps what tabs signed. Every tab closes, the relay restarts (keeping its
 * genesis in a file), and a tab opened afterwards in a fresh browser context gets the balances back from the
 * archive and reads the same block clock as before.
 */
import { expect, test } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { stopProcess } from './support/processes.ts';
import { openTabs } from './support/tabs.ts';

const dir = mkdtempSync(join(tmpdir(), 'archive-e2e-'));
const relay = new RelayProcess(9870, 9871, join(dir, 'relay-key.pb'), [
  '--network',
  'test',
  '--genesis-file',
  join(dir, 'test-network.json'),
]);
const STATUS_PORT = 9872;
let archive: ChildProcess | null = null;
let archiveOutput = '';

test.setTimeout(180_000);
test.afterEach(async () => {
  if (archive) await stopProcess(archive);
  await relay.stop();
});

const metric = async (name: string): Promise<number> => {
  const text = await (await fetch(`http://127.0.0.1:${STATUS_PORT}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
};

test('an archive node keeps the ledger when every tab closes and the relay restarts', async ({ browser }) => {
  await relay.start();
  const genesis = (await (await fetch(relay.networkUrl)).json()) as { genesisMs: number };
  archive = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'core/nodejs/cli.ts',
      '--role',
      'client',
      '--archive',
      '--relay',
      relay.healthUrl,
      '--data',
      join(dir, 'archive'),
      '--status-port',
      String(STATUS_PORT),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  archive.stdout!.on('data', (d: Buffer) => (archiveOutput += d.toString()));
  archive.stderr!.on('data', (d: Buffer) => (archiveOutput += d.toString()));
  await expect
    .poll(async () => (await fetch(`http://127.0.0.1:${STATUS_PORT}/healthz`).catch(() => null))?.status, {
      timeout: 30_000,
    })
    .toBe(200);

  // A tab draws test τ and pays someone; then it closes.
  const [payer] = await openTabs(browser, 1, relay.healthUrl);
  await payer!.page.evaluate(() => window.webtensor.ready);
  const payee = '12D3KooWNvSZnPi3RrhrTwEY4LuuBeB6K6facKUCJcyWG1aoDd2p';
  await payer!.page.evaluate(async (to) => {
    await window.webtensor.ledger.publish('faucet.claim', { amount: '5000000000' });
    await window.webtensor.ledger.publish('transfer', { to, amount: '1234567' });
  }, payee);
  // The archive stored both (it keeps everything it is sent).
  await expect
    .poll(() => metric('webtensor_node_records'), { timeout: 30_000, message: archiveOutput })
    .toBeGreaterThanOrEqual(2);
  expect(payer!.errors).toEqual([]);
  await payer!.context.close();

  // The relay restarts: same key, same genesis.
  await relay.stop();
  await relay.start();
  const after = (await (await fetch(relay.networkUrl)).json()) as { genesisMs: number };
  expect(after.genesisMs).toBe(genesis.genesisMs);

  // A tab in a fresh browser context: its ledger starts empty, and the archive hands it the history.
  const [late] = await openTabs(browser, 1, relay.healthUrl);
  await late!.page.evaluate(() => window.webtensor.ready);
  await expect
    .poll(() => late!.page.evaluate((a) => window.webtensor.ledger.balance(a), payee), { timeout: 60_000 })
    .toBe('1234567');
  // Its block clock runs from the same genesis as before the restart.
  const block = await late!.page.evaluate(() => window.webtensor.ledger.block!);
  expect(Math.abs(block - Math.floor((Date.now() - genesis.genesisMs) / 1000))).toBeLessThanOrEqual(2);
  expect(late!.errors).toEqual([]);
  await late!.context.close();
});
