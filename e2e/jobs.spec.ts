/**
 * Batch jobs, as a person uses them: on a test network with a headless validator (staked from the faucet) and two
 * mining tabs (funded from the faucet, for their bonds), a client tab on /jobs draws test τ, is refused a bad
 * request file (the line named, nothing signed), uploads a job file of 12 requests in 3 shards, sees the price and
 * the deposit, opens it, watches its shards' bars fill as miners claim them and the validator audits them, and
 * downloads the output: 12 lines, in order, each a miner's signed answer. `window.webtensor.jobs` says the same.
 */
import { expect, test, type Page } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { stopProcess } from './support/processes.ts';
import { openTabs, type Tab, expectUids } from './support/tabs.ts';

const relay = new RelayProcess(9720, 9721, undefined, ['--network', 'test']);
const VALIDATOR_PORT = 9722;
const root = mkdtempSync(join(tmpdir(), 'jobs-e2e-'));
const children: ChildProcess[] = [];
const MODEL = 'webtensor/tiny-llama';
const TAO = 1_000_000_000n;

test.setTimeout(300_000);

let miners: Tab[] = [];

test.beforeAll(async () => {
  await relay.start();
  const validator = spawn(
    process.execPath,
    [
      ...['--import', 'tsx', 'core/nodejs/cli.ts', '--relay', relay.healthUrl, '--role', 'validator'],
      ...['--data', join(root, 'validator'), '--status-port', String(VALIDATOR_PORT)],
      ...['--faucet-stake', '1000000000000'],
    ],
    { stdio: 'ignore' },
  );
  children.push(validator);
});

test.afterAll(async () => {
  for (const m of miners) await m.context.close();
  await Promise.all(children.map((c) => stopProcess(c)));
  await relay.stop();
});

const validatorStatus = () =>
  fetch(`http://127.0.0.1:${VALIDATOR_PORT}/status`)
    .then((r) => r.json() as Promise<{ peerId: string; uid: number | null }>)
    .catch(() => null);

const jobLine = (k: number) =>
  JSON.stringify({
    custom_id: `story-${String(k + 1).padStart(2, '0')}`,
    params: {
      model: MODEL,
      prompt: ['Once upon a time', 'The cat', 'In the forest', 'A little boy'][k % 4]!,
      maxNewTokens: 6,
    },
  });

/** This key's jobs through the automation API (the page shows the same). */
const jobsOf = (page: Page) => page.evaluate(() => window.webtensor.jobs.list);
/** Pictures without the sticky header over the content, and with the bars' transitions finished. */
const still = { style: '.top { position: static !important; }', animations: 'disabled' } as const;

test('open a job from /jobs, watch its shards get done and audited, download the output', async ({ browser }) => {
  const started = Date.now();
  // Two mining tabs: registered, then funded for their bonds (twice a shard's pay).
  miners = await openTabs(browser, 2, relay.healthUrl, undefined, () => 'role=miner');
  for (const { page } of miners) await page.evaluate(() => window.webtensor.ready);
  await expectUids(miners);
  for (const { page } of miners) await page.evaluate(() => window.webtensor.wallet.faucet('10'));

  // The client: a fresh tab on /jobs, which joins as a client on its own.
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`/jobs?relay=${encodeURIComponent(relay.healthUrl)}`);
  await expect(page.getByRole('link', { name: 'Jobs' })).toHaveClass(/active/);
  await expect(page.getByTestId('job-spendable')).toHaveText('0 τ', { timeout: 60_000 });

  // No balance: the page offers the faucet.
  await page.getByRole('button', { name: 'Get 100 test τ' }).click();
  await expect(page.getByTestId('jobs-message')).toContainText('Signed and sent');
  await expect(page.getByTestId('job-spendable')).toHaveText('100 τ', { timeout: 30_000 });
  const signed = () => page.evaluate(async () => (await window.webtensor.wallet.history()).length);
  const before = await signed();

  // A bad file: the line is named, and opening it signs nothing.
  const bad = [
    jobLine(0),
    JSON.stringify({ custom_id: 'story-02', params: { model: MODEL, prompt: 'x', max_tokens: 6 } }),
  ];
  await page.getByTestId('job-file').setInputFiles({
    name: 'bad.jsonl',
    mimeType: 'application/jsonl',
    buffer: Buffer.from(bad.join('\n') + '\n'),
  });
  await expect(page.getByTestId('job-problem')).toContainText('line 2');
  await page
    .getByRole('region', { name: 'New job' })
    .screenshot({ path: test.info().outputPath('jobs-bad-file.png'), ...still });
  await page.getByRole('button', { name: 'Open job' }).click();
  await expect(page.getByTestId('jobs-message')).toContainText(/requests are not valid: line 2: params\.maxNewTokens/);
  expect(await signed()).toBe(before);
  expect(await jobsOf(page)).toEqual([]);

  // The good file: 12 requests in 3 shards at 0.01 τ each: a deposit of 0.12 τ.
  const lines = Array.from({ length: 12 }, (_, k) => jobLine(k));
  await page.getByTestId('job-file').setInputFiles({
    name: 'stories.jsonl',
    mimeType: 'application/jsonl',
    buffer: Buffer.from(lines.join('\n') + '\n'),
  });
  await page.getByLabel('price per request').fill('0.01');
  await page.getByLabel('shards').fill('3');
  await page.getByLabel('deadline in epochs').fill('6');
  await expect(page.getByTestId('job-problem')).toHaveCount(0);
  await expect(page.getByTestId('job-requests')).toContainText('12 (stories.jsonl)');
  await expect(page.getByTestId('job-price')).toHaveText('0.01 τ per request');
  await expect(page.getByTestId('job-deposit')).toContainText('0.12 τ');

  // The validator holds a permit by now or soon; open the job.
  await expect.poll(async () => (await validatorStatus())?.uid ?? null, { timeout: 60_000 }).not.toBeNull();
  await page.getByRole('button', { name: 'Open job' }).click();
  await expect(page.getByTestId('jobs-message')).toContainText('Signed and sent: job');
  const card = page.getByTestId('job');
  await expect(card).toHaveAttribute('data-phase', 'open', { timeout: 30_000 });
  const id = (await card.getAttribute('data-job'))!;
  console.log(`job ${id} open after ${((Date.now() - started) / 1000).toFixed(0)} s`);

  // Its bars fill: a picture of the job at each new state of its shards, until all three are paid.
  const bars = card.getByRole('progressbar');
  await expect(bars).toHaveCount(3);
  const seen: string[] = [];
  const shots = async () => {
    const states = (await jobsOf(page))[0]?.shards.map((s) => s.status).join(',') ?? '';
    if (states !== seen.at(-1)) {
      seen.push(states);
      await card.screenshot({ path: test.info().outputPath(`job-${seen.length}-${states}.png`), ...still });
      if (states.includes('claimed') || states.includes('result'))
        await page.screenshot({ path: test.info().outputPath('jobs-progress.png'), fullPage: true, ...still });
    }
    return states;
  };
  await expect.poll(shots, { timeout: 150_000, intervals: [500] }).toBe('paid,paid,paid');
  console.log(`shard states seen: ${seen.join(' → ')}`);
  await expect(card).toHaveAttribute('data-phase', 'closed', { timeout: 30_000 });
  for (const bar of await bars.all()) await expect(bar).toHaveAttribute('aria-valuetext', 'paid');
  console.log(`job closed after ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const job = (await page.evaluate((id) => window.webtensor.jobs.status(id), id))!;
  expect(job.phase).toBe('closed');
  expect(BigInt(job.deposit)).toBe((12n * TAO) / 100n);
  expect(job.paid).toBe(job.deposit);
  expect(job.refunded).toBe('0');
  const minerIds = await Promise.all(miners.map((m) => m.page.evaluate(() => window.webtensor.peerId!)));
  for (const s of job.shards) expect(minerIds).toContain(s.miner);
  await expect(card.getByTestId('job-amount-paid')).toHaveText('0.12 τ');

  // The output: a JSONL file of 12 lines, in order, each a signed answer of its shard's miner.
  const link = card.getByTestId('job-download');
  await expect(link).toBeVisible({ timeout: 60_000 });
  // (A miner out of reach for a moment leaves its shard "not fetched"; the page fetches it again by itself.)
  await expect(card.getByTestId('job-output-summary')).toHaveText('12 lines: 12 answered', { timeout: 30_000 });
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const output = readFileSync((await download.path())!, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(output.map((l) => l.custom_id)).toEqual(lines.map((l) => JSON.parse(l).custom_id));
  for (const [k, l] of output.entries()) {
    expect(l.result.requestId).toBe(`${id}:${k}`);
    expect(l.result.miner).toBe(job.shards.find((s) => s.first <= k && k < s.end)!.miner);
  }
  const viaApi = await page.evaluate((id) => window.webtensor.jobs.results(id), id);
  expect(viaApi.map((l) => ('result' in l ? l.result.outputHash : l.error.code))).toEqual(
    output.map((l) => l.result.outputHash),
  );
  await card.getByText('First answers').click();
  await page.screenshot({ path: test.info().outputPath('jobs-closed.png'), fullPage: true, ...still });
  await page.getByRole('button', { name: 'switch to dark theme' }).click();
  await card.screenshot({ path: test.info().outputPath('jobs-closed-dark.png'), ...still });

  // A second job, opened through window.webtensor.jobs and cancelled from its card: what no miner holds comes back.
  await page.getByRole('button', { name: 'switch to light theme' }).click();
  const second = await page.evaluate(
    (lines) => window.webtensor.jobs.open({ lines, priceTao: '0.001', deadlineEpochs: 6, shards: 12 }),
    lines.map((l) => l.replace('story-', 'again-')).join('\n'),
  );
  const secondCard = page.locator(`[data-testid="job"][data-job="${second}"]`);
  await expect(secondCard).toHaveAttribute('data-phase', 'open', { timeout: 30_000 });
  await secondCard.getByRole('button', { name: 'Cancel job' }).click();
  // Nothing is signed before the person confirms.
  await expect(secondCard.getByRole('group', { name: 'confirm cancel' })).toContainText('Cancel this job?');
  expect((await page.evaluate((id) => window.webtensor.jobs.status(id), second))!.cancelled).toBe(false);
  await secondCard.screenshot({ path: test.info().outputPath('jobs-confirm-cancel.png'), ...still });
  await secondCard.getByRole('button', { name: 'Yes, cancel it' }).click();
  await expect(secondCard).toHaveAttribute('data-phase', 'closed', { timeout: 90_000 });
  await expect(secondCard.getByTestId('job-phase')).toHaveText('closed, cancelled');
  const cancelled = (await page.evaluate((id) => window.webtensor.jobs.status(id), second))!;
  expect(cancelled.cancelled).toBe(true);
  expect(BigInt(cancelled.refunded)).toBeGreaterThan(0n);
  expect(BigInt(cancelled.paid) + BigInt(cancelled.refunded)).toBe(BigInt(cancelled.deposit));
  await expect(secondCard.getByRole('progressbar', { name: 'shard 11' })).toHaveAttribute(
    'aria-valuetext',
    /paid|refunded/,
  );
  await secondCard.screenshot({ path: test.info().outputPath('jobs-cancelled.png'), ...still });

  expect(errors).toEqual([]);
  console.log(`done after ${((Date.now() - started) / 1000).toFixed(0)} s`);
  await context.close();
});
