/**
 * The gateway's audit on a real network: a relay, a headless validator (staked from the test faucet), an honest
 * headless miner, a cheating one (`--fault cheat-users`: honest with requests signed by a validator's key;
 * made-up answers for everyone else, with made-up candidates consistent enough for every client's stage-1 check)
 * and the gateway auditing every answer it serves. The validator runs both stages on each handed-in answer: the
 * honest miner's answers are correct, the cheater's wrong, and the wrong ones zero it. Its own challenges catch the
 * cheater too: once it holds a permit they go out through a connected peer (the gateway, a tab) from that peer's
 * key, which the cheater cannot tell from a user's.
 */
import { expect, test } from '@playwright/test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { Processes } from './support/processes.ts';

const relay = new RelayProcess(9750, 9751, undefined, ['--network', 'test']);
const VALIDATOR_PORT = 9752;
const HONEST_PORT = 9753;
const CHEATER_PORT = 9754;
const GATEWAY_PORT = 9755;
const MODEL = 'webtensor/tiny-llama';
const root = mkdtempSync(join(tmpdir(), 'audit-e2e-'));
const processes = new Processes(root, () => relay.healthUrl);
const base = `http://127.0.0.1:${GATEWAY_PORT}/v1`;

test.setTimeout(300_000);

interface Status {
  peerId: string;
  uid: number | null;
  validator: {
    audits: { checked: number; wrong: number; refused: number };
    scores: { hotkey: string; score: number; wrong: number; penaltyLeft: number }[];
  } | null;
}
const status = (port: number): Promise<Status | null> =>
  fetch(`http://127.0.0.1:${port}/status`)
    .then((r) => r.json() as Promise<Status>)
    .catch(() => null);

interface AuditView {
  sampled: number;
  correct: number;
  wrong: number;
  failed: number;
  recent: { verdict: 'correct' | 'wrong'; miner: string; validator: string }[];
}
const audits = async (): Promise<AuditView | null> =>
  fetch(`${base}/webtensor/status`)
    .then((r) => r.json() as Promise<{ audits: AuditView }>)
    .then((s) => s.audits)
    .catch(() => null);

test.beforeAll(async () => {
  await relay.start();
  processes.node('validator', VALIDATOR_PORT, '--role', 'validator', '--faucet-stake', '1000000000000');
  processes.node('honest', HONEST_PORT, '--role', 'miner', '--model', MODEL);
  processes.node('cheater', CHEATER_PORT, '--role', 'miner', '--model', MODEL, '--fault', 'cheat-users');
  processes.start('gateway', [
    'gateway/main.ts',
    ...['--port', String(GATEWAY_PORT), '--relay', relay.healthUrl, '--data', join(root, 'gateway')],
    ...['--audit-rate', '1'],
  ]);
});

test.afterAll(async () => {
  await processes.stopAll();
  await relay.stop();
});

// Playwright requires an object pattern for the fixtures, even when none are used.
// eslint-disable-next-line no-empty-pattern
test.afterEach(async ({}, info) => {
  if (info.status !== info.expectedStatus) processes.printLogs();
});

/** One chat completion through the gateway; resolves with the miner that answered ('' if none). */
const askGateway = (content: string) =>
  fetch(`${base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content }], max_tokens: 8 }),
  }).then((r) => r.headers.get('x-webtensor-miner') ?? '');

/**
 * Both miners hold a UID. Each test waits for it: after a failed test Playwright starts a new worker, which starts
 * the processes afresh, so a later test cannot count on an earlier one having waited.
 */
const minersRegistered = () =>
  expect
    .poll(async () => (await Promise.all([HONEST_PORT, CHEATER_PORT].map(status))).every((s) => s?.uid != null), {
      timeout: 120_000,
    })
    .toBe(true);

test('validators check the answers the gateway serves: the cheating miner is caught, the honest one is not', async () => {
  await minersRegistered();
  const honest = (await status(HONEST_PORT))!.peerId;
  const cheater = (await status(CHEATER_PORT))!.peerId;
  const validator = (await status(VALIDATOR_PORT))!.peerId;

  // Ask in pairs (the gateway spreads concurrent requests over both miners) until the validator, once it holds a
  // permit, has judged answers of each.
  let served = new Set<string>();
  await expect
    .poll(
      async () => {
        const answers = await Promise.all(
          [0, 1].map(() =>
            fetch(`${base}/chat/completions`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({
                model: MODEL,
                messages: [{ role: 'user', content: `Tell me about the number ${Math.random()}` }],
                max_tokens: 8,
              }),
            }),
          ),
        );
        served = new Set([...served, ...answers.map((a) => a.headers.get('x-webtensor-miner') ?? '')]);
        const a = await audits();
        const judged = new Set(a?.recent.map((r) => `${r.miner}:${r.verdict}`));
        return judged.has(`${cheater}:wrong`) && judged.has(`${honest}:correct`);
      },
      { timeout: 180_000, intervals: [2000] },
    )
    .toBe(true);

  const a = (await audits())!;
  // Every verdict is right: the honest miner's answers are never judged wrong, the cheater's never correct.
  expect(a.recent.filter((r) => r.miner === honest).every((r) => r.verdict === 'correct')).toBe(true);
  expect(a.recent.filter((r) => r.miner === cheater).every((r) => r.verdict === 'wrong')).toBe(true);
  expect(a.recent.every((r) => r.validator === validator)).toBe(true);
  expect(served.has(honest) && served.has(cheater)).toBe(true);
  const v = (await status(VALIDATOR_PORT))!.validator!;
  expect(v.audits.checked).toBeGreaterThanOrEqual(2);
  expect(v.audits.wrong).toBeGreaterThanOrEqual(1);
  // Caught (by users' answers, and by forwarded challenges), the cheater is zeroed for its next challenges.
  expect(v.scores.find((s) => s.hotkey === cheater)).toMatchObject({ score: 0 });
  expect(v.scores.find((s) => s.hotkey === cheater)!.penaltyLeft).toBeGreaterThan(0);
  expect(v.scores.find((s) => s.hotkey === honest)?.wrong ?? 0).toBe(0);
});

test('a tab whose user opts in on Ask hands its answers to a validator, and shows the verdict', async ({ page }) => {
  await minersRegistered();
  await page.goto(`/ask?relay=${encodeURIComponent(relay.healthUrl)}&role=client`);
  const honest = (await status(HONEST_PORT))!.peerId;
  const cheater = (await status(CHEATER_PORT))!.peerId;
  await page.getByTestId('check-answers').check();
  await page.getByLabel('What should the network continue?').fill('A little cat found a shiny stone');
  await page.getByRole('button', { name: 'Ask' }).click();
  await expect(page.getByTestId('answer-check'))
    .toContainText('Checked by validator', { timeout: 60_000 })
    .catch(async (err: unknown) => {
      // What the tab's auditor did, and the validator's audit counts, for the failure report.
      console.log(`--- tab audits: ${JSON.stringify(await page.evaluate(() => window.webtensor.audits))}`);
      console.log(`--- validator audits: ${JSON.stringify((await status(VALIDATOR_PORT))?.validator?.audits)}`);
      throw err;
    });
  // Whichever miner answered, the verdict is the right one: the cheater made its answer up for a user.
  const miner = await page.evaluate(() => window.webtensor.audits!.recent.at(-1)!.miner);
  expect([honest, cheater]).toContain(miner);
  await expect(page.getByTestId('answer-check')).toContainText(miner === honest ? 'correct' : 'wrong');
  await page.screenshot({ path: test.info().outputPath('ask-verdict.png'), fullPage: true });
  // The choice is kept for the next visit.
  await page.reload();
  await expect(page.getByTestId('check-answers')).toBeChecked();
});

test('with users asking, the miner honest only with validators ends near zero incentive; the honest one earns', async ({
  page,
}) => {
  test.setTimeout(300_000);
  await minersRegistered();
  await page.goto(`/?autostart=1&relay=${encodeURIComponent(relay.healthUrl)}&role=client`);
  const honest = (await status(HONEST_PORT))!.peerId;
  const cheater = (await status(CHEATER_PORT))!.peerId;
  // Users keep asking (the gateway audits every answer), while epochs close on the validator's weights.
  await expect
    .poll(
      async () => {
        await Promise.all([0, 1].map((k) => askGateway(`Story ${k} ${Math.random()}`)));
        return page.evaluate(
          ([h, c]) => {
            const last = window.webtensor.ledger.summaries.at(-1);
            const incentive = (k: string) => last?.uids.find((u) => u.hotkey === k)?.incentive ?? -1;
            const [hi, ci] = [incentive(h), incentive(c)];
            return `honest ${hi > 0 ? 'earns' : hi}, cheater ${ci >= 0 && ci < 655 ? 'near zero' : ci}`;
          },
          [honest, cheater] as const,
        );
      },
      { timeout: 240_000, intervals: [2000] },
    )
    .toBe('honest earns, cheater near zero');
  // Its challenges caught it too, not only the audits: they reached it forwarded, from keys that are no
  // validator's, and it made its answers to them up as it does users'. (Every wrong audit is the cheater's, so
  // answers proven wrong beyond them were challenges.) A direct challenge alone would never have caught it.
  await expect
    .poll(
      async () => {
        const v = (await status(VALIDATOR_PORT))!.validator!;
        return v.scores.find((s) => s.hotkey === cheater)!.wrong - v.audits.wrong;
      },
      { timeout: 60_000, intervals: [2000] },
    )
    .toBeGreaterThan(0);
  const v = (await status(VALIDATOR_PORT))!.validator!;
  expect(v.scores.find((s) => s.hotkey === honest)?.wrong ?? 0).toBe(0);
});
