/**
 * A headless node's wallet over its status port, on a real node and an in-process relay: reading is open,
 * spending needs the token from the node's data directory, a bad request is refused with a sentence and signs
 * nothing, and the CLI client (`npm run node -- wallet …`) speaks to it.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientConfig } from '../config.ts';
import { WebtensorNode } from '../node.ts';
import { startInProcessRelay, type InProcessRelay } from '../testing/in-process-relay.ts';
import { createNodePlatform } from './platform.ts';
import { startStatusServer, type StatusServer } from './status-server.ts';
import { parseWalletArgs, runWalletCall } from './wallet-cli.ts';
import { walletToken, WALLET_TOKEN_FILE } from './wallet-http.ts';

let relay: InProcessRelay;
let dir: string;
let node: WebtensorNode;
let server: StatusServer;
let token: string;

beforeAll(async () => {
  relay = await startInProcessRelay();
  dir = await mkdtemp(join(tmpdir(), 'webtensor-wallet-'));
  node = new WebtensorNode(clientConfig({ healthUrl: relay.healthUrl }), createNodePlatform({ dataDir: dir }));
  await node.start();
  token = await walletToken(dir);
  server = await startStatusServer({ host: '127.0.0.1', port: 0, node, walletToken: token });
});

afterAll(async () => {
  await server?.close();
  await node?.stop();
  await relay?.stop();
  await rm(dir, { recursive: true, force: true });
});

const wallet = async () =>
  (await (await fetch(`${server.url}/wallet`)).json()) as { balance: string; history: { kind: string }[] };
const post = (path: string, body: unknown, auth: string | null = token) =>
  fetch(`${server.url}/wallet/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${auth}` } : {}) },
    body: JSON.stringify(body),
  });

describe("a headless node's wallet", () => {
  it('keeps one token, readable only by its owner', async () => {
    expect(await walletToken(dir)).toBe(token);
    expect((await readFile(join(dir, WALLET_TOKEN_FILE), 'utf8')).trim()).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses to spend without the token, or with bad input, signing nothing', async () => {
    expect((await post('faucet', { amount: '1' }, null)).status).toBe(401);
    expect((await post('faucet', { amount: '1' }, 'f'.repeat(64))).status).toBe(401);
    const bad = await post('transfer', { to: 'nobody', amount: '1' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'bad-input', message: expect.stringMatching(/not a peer id/) });
    expect((await post('faucet', { amount: '-1' })).status).toBe(400);
    expect((await post('faucet', {})).status).toBe(400);
    expect((await wallet()).history).toEqual([]);
  });

  it('draws test τ from the faucet through the CLI client, and shows it', async () => {
    const port = String(server.port);
    expect(await runWalletCall(parseWalletArgs(['faucet', '2.5', '--status-port', port, '--data', dir]))).toBe(0);
    const deadline = Date.now() + 15_000;
    while ((await wallet()).balance !== '2500000000' && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    expect(await wallet()).toMatchObject({ balance: '2500000000', history: [{ kind: 'faucet.claim' }] });
    expect(await runWalletCall(parseWalletArgs(['send', 'nobody', '1', '--status-port', port, '--data', dir]))).toBe(1);
  });

  it('parses wallet commands, naming what is wrong', () => {
    expect(parseWalletArgs(['balance', '--status-port', '9093'])).toMatchObject({ method: 'GET', body: null });
    expect(parseWalletArgs(['stake', 'HK', '5', '--status-port', '9093'])).toMatchObject({
      method: 'POST',
      url: 'http://127.0.0.1:9093/wallet/stake',
      body: { hotkey: 'HK', amount: '5' },
    });
    expect(() => parseWalletArgs(['send', 'TO', '--status-port', '9093'])).toThrow(/send takes TO AMOUNT/);
    expect(() => parseWalletArgs(['mint', '--status-port', '9093'])).toThrow(/Unknown wallet command "mint"/);
    expect(() => parseWalletArgs(['balance'])).toThrow(/--status-port/);
  });
});
