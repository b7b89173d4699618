/**
 * Verification on a real network (issue 17): a relay, a headless validator, an honest headless miner on WASM, an
 * honest tab miner on WebGPU (Chromium's SwiftShader adapter, forced), and three cheating headless miners: one
 * serving another model under the subnet's name (`other-model`), one making answers up with consistent made-up
 * candidates (`random`), one selling half an answer as finished (`truncate`). The validator challenges each with
 * requests drawn like users', checks every answer's tokens against its signed candidates and audits half of them
 * against its own pass of the pinned model. Both honest miners, whatever their backend's float rounding, are never
 * found wrong and earn; every cheater is caught and ends near zero incentive.
 */
import { expect, test, type Page } from '@playwright/test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { Processes } from './support/processes.ts';
import { chromiumLaunchOptions } from '../scripts/chromium.ts';
import { challengeParams } from '../shared/validator/challenges.ts';
import { rng } from '../shared/yuma/synthetic.ts';
import { openTabs, type Tab, expectUids } from './support/tabs.ts';

// SwiftShader's WebGPU adapter: --enable-unsafe-webgpu, and without --disable-gpu (which removes every adapter).
test.use({
  launchOptions: {
    ...chromiumLaunchOptions,
    args: [...chromiumLaunchOptions.args.filter((a) => a !== '--disable-gpu'), '--enable-unsafe-webgpu'],
  },
});
test.setTimeout(480_000);

const relay = new RelayProcess(9770, 9771, undefined, ['--network', 'test']);
const VALIDATOR_PORT = 9772;
const MINERS = { honest: 9773, 'other-model': 9774, random: 9775, truncate: 9776 } as const;
type Headless = keyof typeof MINERS;
const MODEL = 'webtensor/tiny-llama';
const root = mkdtempSync(join(tmpdir(), 'verification-e2e-'));
const processes = new Processes(root, () => relay.healthUrl);
/** The WebGPU miner tab, for the failure report. */
let gpuTab: Tab | undefined;

interface MinerView {
  uid: number;
  hotkey: string;
  score: number;
  challenges: number;
  audited: number;
  wrong: number;
  penaltyLeft: number;
}
interface Status {
  peerId: string;
  uid: number | null;
  model: string | null;
  validator: { scores: MinerView[]; deepChecks: { count: number; failed: number } } | null;
}
const status = (port: number): Promise<Status | null> =>
  fetch(`http://127.0.0.1:${port}/status`)
    .then((r) => r.json() as Promise<Status>)
    .catch(() => null);

test.beforeAll(() => relay.start());

/** The headless validator and miners; started once the WebGPU tab has its model (see the test). */
function startHeadless(): void {
  processes.node('validator', VALIDATOR_PORT, '--role', 'validator', '--faucet-stake', '1000000000000');
  for (const [name, port] of Object.entries(MINERS))
    processes.node(name, port, '--role', 'miner', '--model', MODEL, ...(name === 'honest' ? [] : ['--fault', name]));
}

test.afterAll(async () => {
  await processes.stopAll();
  await relay.stop();
});

// eslint-disable-next-line no-empty-pattern
test.afterEach(async ({}, info) => {
  if (info.status === info.expectedStatus) return;
  processes.printLogs();
  console.log(`--- validator status\n${JSON.stringify((await status(VALIDATOR_PORT))?.validator, null, 1)}`);
  if (!gpuTab) return;
  const state = await gpuTab.page
    .evaluate(() => ({ miner: window.webtensor.miner, registration: window.webtensor.ledger.registration }))
    .catch((e: Error) => e.message);
  console.log(`--- WebGPU tab: ${JSON.stringify(state)}\n${gpuTab.console.join('\n')}`);
});

const incentives = (page: Page, hotkeys: string[]) =>
  page.evaluate((keys) => {
    const last = window.webtensor.ledger.summaries.at(-1);
    return keys.map((k) => last?.uids.find((u) => u.hotkey === k)?.incentive ?? -1);
  }, hotkeys);

test('honest miners on WASM and WebGPU pass every check and earn; other-model, random and truncate are caught and earn nothing', async ({
  browser,
}) => {
  const [tab] = await openTabs(browser, 1, relay.healthUrl, undefined, () => `role=miner&device=webgpu&model=${MODEL}`);
  gpuTab = tab!;
  const gpu = tab!.page;
  // The tab loads its model before the five processes load theirs: SwiftShader compiles every shader on the CPU,
  // and sharing two cores with five model loads it had not loaded after 180 s in CI.
  await expect.poll(() => gpu.evaluate(() => window.webtensor.miner.device), { timeout: 180_000 }).toBe('webgpu');
  startHeadless();
  // The decode step is the same in Chromium and Node: seeded samples drawn as challenges are, on WebGPU in the tab
  // and on WASM in the honest headless miner (asked by the tab, signed), the same tokens from candidates at most a
  // rounding step apart. (A second Node engine loaded in this test process would keep it from exiting for a minute.)
  await expect.poll(async () => (await status(MINERS.honest))?.model ?? null, { timeout: 120_000 }).toBe(MODEL);
  const honestMiner = (await status(MINERS.honest))!.peerId;
  const rand = rng(7);
  for (let k = 0; k < 4; k++) {
    const p = challengeParams(MODEL, rand);
    const asked = { ...p, maxNewTokens: Math.min(p.maxNewTokens, 12) };
    const [inTab, inNode] = await gpu.evaluate(
      async ([miner, model, prompt, n, sampling, stop]) => [
        await window.webtensor.inference.generate(prompt, n, { sampling, stop }),
        // Reaching the miner may take a few tries while five processes load their models on two cores.
        await (async () => {
          for (let tries = 1; ; tries++) {
            try {
              return (await window.webtensor.inference.remote(miner, model, prompt, n, { sampling, stop })).result;
            } catch (err) {
              if (tries === 6) throw err;
              await new Promise((r) => setTimeout(r, 5000));
            }
          }
        })(),
      ],
      [honestMiner, MODEL, asked.prompt, asked.maxNewTokens, asked.sampling, asked.stop] as const,
    );
    expect(inTab.tokenIds).toEqual(inNode.tokenIds);
    // Every candidate both lists hold, at most 2/1024 nat apart.
    const worst = Math.max(
      ...inTab.steps.flatMap((step, i) =>
        step.top.flatMap(([id, q]) => {
          const there = inNode.candidates[i]!.find(([other]) => other === id);
          return there ? [Math.abs(there[1] - q)] : [];
        }),
      ),
    );
    expect(worst).toBeLessThanOrEqual(2);
  }

  await expect
    .poll(async () => (await Promise.all(Object.values(MINERS).map(status))).every((s) => s?.uid != null), {
      timeout: 120_000,
    })
    .toBe(true);
  await expectUids([tab!]);
  const hotkey: Record<Headless | 'webgpu', string> = {
    ...(Object.fromEntries(
      await Promise.all(Object.entries(MINERS).map(async ([name, port]) => [name, (await status(port))!.peerId])),
    ) as Record<Headless, string>),
    webgpu: await gpu.evaluate(() => window.webtensor.peerId!),
  };
  const view = async (name: Headless | 'webgpu') =>
    (await status(VALIDATOR_PORT))?.validator?.scores.find((s) => s.hotkey === hotkey[name]);

  // Every miner challenged and audited in depth at least twice; every cheater caught.
  await expect
    .poll(
      async () => {
        const v = (await status(VALIDATOR_PORT))?.validator;
        if (!v) return 'no validator yet';
        const names = Object.keys(hotkey) as (Headless | 'webgpu')[];
        return names
          .map((n) => {
            const s = v.scores.find((x) => x.hotkey === hotkey[n]);
            return `${n}:${s ? `${s.challenges}/${s.audited}/${s.wrong}` : '-'}`;
          })
          .join(' ');
      },
      { timeout: 200_000, intervals: [3000] },
    )
    .toMatch(
      /^honest:\d+\/([2-9]|\d\d+)\/0 other-model:\d+\/\d+\/[1-9]\d* random:\d+\/\d+\/[1-9]\d* truncate:\d+\/\d+\/[1-9]\d* webgpu:\d+\/([2-9]|\d\d+)\/0$/,
    );
  for (const honest of ['honest', 'webgpu'] as const) expect((await view(honest))!.score).toBeGreaterThan(0.5);
  for (const cheat of ['other-model', 'random', 'truncate'] as const)
    expect(await view(cheat)).toMatchObject({ score: 0 });

  // Then the weights, through commit and reveal and Yuma: both honest miners earn, no cheater earns.
  const everyone = Object.values(hotkey);
  await expect
    .poll(
      async () => {
        const [h, o, r, t, g] = await incentives(gpu, everyone);
        return `honest ${h! > 0 ? 'earns' : h} webgpu ${g! > 0 ? 'earns' : g} cheats ${[o, r, t].every((x) => x! >= 0 && x! < 655) ? 'near zero' : [o, r, t].join('/')}`;
      },
      { timeout: 150_000, intervals: [3000] },
    )
    .toBe('honest earns webgpu earns cheats near zero');
  // Over the whole run, the honest miners were never found wrong by any check.
  expect((await view('honest'))!.wrong).toBe(0);
  expect((await view('webgpu'))!.wrong).toBe(0);
  expect(tab!.errors).toEqual([]);
  await tab!.context.close();
});
