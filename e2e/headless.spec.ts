/**
 * Headless nodes with tabs: a miner started as `npm run node -- --role miner` (a real child process: Node
 * platform, SQLite ledger, transformers.js on onnxruntime-web WASM) registers, answers a tab client with exactly
 * the tokens the tab computes itself, and a tab validator scores it correct; a headless validator (staked from the
 * test faucet) scores it too, and the headless nodes and the tab agree on the epochs' roots. Restarted, the miner
 * keeps its peer id, UID and records.
 */
import { expect, test, type Page } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { stopProcess } from './support/processes.ts';
import { openTabs } from './support/tabs.ts';

const relay = new RelayProcess(9860, 9861, undefined, ['--network', 'test']);
const STATUS_PORT = 9862;
const VALIDATOR_PORT = 9863;
const root = mkdtempSync(join(tmpdir(), 'headless-e2e-'));
const dataDir = join(root, 'miner');
let miner: ChildProcess | null = null;
let validatorNode: ChildProcess | null = null;
let minerLog = '';
const MODEL = 'webtensor/tiny-llama'; // the test network's subnet model

// A budget, not a deadline: its waits are eventual, and two model loads (the restart) on a loaded 2-core machine
// took the whole of 240 s in CI.
test.setTimeout(420_000);
test.beforeAll(() => relay.start());
test.afterAll(async () => {
  await Promise.all([miner, validatorNode].map((c) => c && stopProcess(c)));
  await relay.stop();
});

function startMiner(): ChildProcess {
  minerLog = '';
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'core/nodejs/cli.ts',
      ...['--role', 'miner', '--relay', relay.healthUrl, '--data', dataDir, '--status-port', String(STATUS_PORT)],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d: Buffer) => (minerLog += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (minerLog += d.toString()));
  return child;
}

interface Status {
  peerId: string;
  uid: number | null;
  model: string | null;
  lastEpoch: { epoch: number; recordsRoot: string; stateRoot: string } | null;
  validator: { challenges: number; correctMiners: number } | null;
}
const status = async (port = STATUS_PORT): Promise<Status | null> =>
  fetch(`http://127.0.0.1:${port}/status`)
    .then((r) => r.json() as Promise<Status>)
    .catch(() => null);
const records = async (): Promise<number> => {
  const text = await (await fetch(`http://127.0.0.1:${STATUS_PORT}/metrics`)).text();
  return Number(/^webtensor_node_records (\d+)/m.exec(text)?.[1] ?? NaN);
};

test('a headless miner answers a tab like a tab would, a tab validator scores it, and it survives a restart', async ({
  browser,
}) => {
  miner = startMiner();
  await expect
    .poll(async () => (await status())?.uid ?? null, { timeout: 120_000, message: `miner log:\n${minerLog}` })
    .not.toBeNull();
  const before = (await status())!;
  expect(before.model).toBe(MODEL);

  const tabs = await openTabs(browser, 2, relay.healthUrl, undefined, (k) =>
    k === 0 ? 'role=validator' : 'role=client',
  );
  const [validator, client] = tabs.map((t) => t.page) as [Page, Page];
  await Promise.all(tabs.map((t) => t.page.evaluate(() => window.webtensor.ready)));

  // The tab client's own run of the model, against the headless miner's answer: the same token ids.
  await client.evaluate((m) => window.webtensor.inference.load(m, 'wasm'), MODEL);
  await expect
    .poll(
      () => client.evaluate((id) => window.webtensor.peers.some((p) => p.peerId === id && p.direct), before.peerId),
      {
        timeout: 30_000,
      },
    )
    .toBe(true);
  for (const prompt of ['Once upon a time', 'The weather today']) {
    const local = await client.evaluate((p) => window.webtensor.inference.generate(p, 16), prompt);
    const remote = await client.evaluate(([peer, m, p]) => window.webtensor.inference.remote(peer, m, p, 16), [
      before.peerId,
      MODEL,
      prompt,
    ] as const);
    expect(remote.result.tokenIds).toEqual(local.tokenIds);
    expect(remote.result).toMatchObject({ miner: before.peerId, model: MODEL });
  }

  // The tab validator challenges the headless miner and finds its answers correct.
  await expect
    .poll(
      () =>
        validator.evaluate(
          (uid) => window.webtensor.validator?.scores.find((s) => s.uid === uid)?.correct ?? 0,
          before.uid!,
        ),
      { timeout: 150_000 },
    )
    .toBeGreaterThan(0);
  // A headless validator, staked from the test faucet, finds the headless miner correct too.
  validatorNode = spawn(
    process.execPath,
    [
      ...['--import', 'tsx', 'core/nodejs/cli.ts', '--role', 'validator', '--faucet-stake', '1000000000000'],
      ...['--relay', relay.healthUrl, '--data', join(root, 'validator'), '--status-port', String(VALIDATOR_PORT)],
    ],
    { stdio: 'ignore' },
  );
  await expect
    .poll(async () => (await status(VALIDATOR_PORT))?.validator?.correctMiners ?? 0, { timeout: 120_000 })
    .toBeGreaterThan(0);

  // The headless miner, the headless validator and the tab client report the same roots for an epoch they all
  // closed.
  const rootsAt = async (epoch: number) => {
    const tab = await client.evaluate((e) => window.webtensor.ledger.epochs.find((x) => x.epoch === e) ?? null, epoch);
    const heads = await Promise.all([status(), status(VALIDATOR_PORT)]);
    return [tab, ...heads.map((h) => (h?.lastEpoch?.epoch === epoch ? h.lastEpoch : null))].map((r) =>
      r ? `${r.recordsRoot}:${r.stateRoot}` : null,
    );
  };
  await expect
    .poll(
      async () => {
        const epoch = Math.min(
          ...(await Promise.all([status(), status(VALIDATOR_PORT)])).map((h) => h?.lastEpoch?.epoch ?? -1),
        );
        const roots = await rootsAt(epoch);
        return epoch >= 0 && roots.every((r) => r !== null && r === roots[0]);
      },
      { timeout: 60_000 },
    )
    .toBe(true);

  const held = await records();
  expect(held).toBeGreaterThan(0);

  // Restart: the same key and ledger from the data directory.
  const exited = new Promise((r) => miner!.once('exit', r));
  miner.kill('SIGTERM');
  expect(await exited).toBe(0);
  miner = startMiner();
  await expect.poll(async () => (await status())?.peerId, { timeout: 60_000 }).toBe(before.peerId);
  await expect.poll(async () => (await status())?.uid, { timeout: 60_000 }).toBe(before.uid);
  expect(await records()).toBeGreaterThanOrEqual(held);
  for (const t of tabs) expect(t.errors).toEqual([]);
  for (const t of tabs) await t.context.close();
});
