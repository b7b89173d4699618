/**
 * A node reads its network config from the relay (`/network`) over real HTTP, and refuses one it must not run:
 * malformed, or with a subnet model that is not pinned (THREATS.md finding 12: a hub branch can change under its
 * name).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { testProfile } from '../shared/ledger/profiles.ts';
import { loadNetworkConfig } from './network-config.ts';

let server: Server | null = null;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** A relay's /healthz and /network, serving `network` as its config. */
async function relayServing(network: unknown): Promise<string> {
  server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(req.url === '/network' ? JSON.stringify(network) : '{"ok":true}');
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
}

describe('loadNetworkConfig', () => {
  it("takes the relay's config when its subnet models are pinned", async () => {
    const network = testProfile(Date.now());
    const healthUrl = await relayServing(network);
    expect((await loadNetworkConfig({ network: null, relay: { healthUrl } }))?.subnets[0]!.model).toBe(
      network.subnets[0]!.model,
    );
  });

  it('refuses a subnet model that is a hub branch, naming the subnet and the model', async () => {
    const network = testProfile(Date.now());
    const healthUrl = await relayServing({
      ...network,
      subnets: [{ ...network.subnets[0]!, model: 'onnx-community/SmolLM2-135M-Instruct' }],
    });
    await expect(loadNetworkConfig({ network: null, relay: { healthUrl } })).rejects.toMatchObject({
      code: 'network-config',
      message: expect.stringMatching(/subnet 1: onnx-community\/SmolLM2-135M-Instruct is a hub model at the branch/),
    });
  });

  it('refuses a malformed config naming the field', async () => {
    const healthUrl = await relayServing({ ...testProfile(Date.now()), blockMs: 'fast' });
    await expect(loadNetworkConfig({ network: null, relay: { healthUrl } })).rejects.toMatchObject({
      code: 'network-config',
      message: expect.stringContaining('blockMs'),
    });
  });
});
