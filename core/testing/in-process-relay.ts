/**
 * Test helper: a real relay (the same libp2p node, peer list and HTTP endpoints `npm run relay` starts) inside
 * the test's own process, on free ports, with a fresh test network and per-IP limits high enough for every node
 * of a test to connect from 127.0.0.1 (LOOPBACK_TEST_LIMITS). Stop it when done.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNetworkConfig, parseRelayConfig } from '../../relay/config.ts';
import { startHttp } from '../../relay/http.ts';
import { loadOrCreateKey } from '../../relay/key.ts';
import { createRelayNode, type RelayNode } from '../../relay/node.ts';
import { servePeerList } from '../../relay/peer-list.ts';
import { LOOPBACK_TEST_LIMITS } from '../../relay/testing/loopback-limits.ts';

export interface InProcessRelay {
  node: RelayNode;
  healthUrl: string;
  stop(): Promise<void>;
}

/** `extraArgs` are more relay flags (e.g. `--peer-sample 1`); they come last and win. */
export async function startInProcessRelay(network = 'test', extraArgs: string[] = []): Promise<InProcessRelay> {
  const dir = await mkdtemp(join(tmpdir(), 'webtensor-relay-'));
  const config = parseRelayConfig(
    [
      '--port',
      '0',
      '--http-port',
      '0',
      '--network',
      network,
      '--key-file',
      join(dir, 'key.pb'),
      ...LOOPBACK_TEST_LIMITS,
      ...extraArgs,
    ],
    {},
  );
  const startedAt = Date.now();
  const { key } = await loadOrCreateKey(config.keyFile);
  const node = await createRelayNode(config, key);
  await servePeerList(node, config.peerSample);
  const http: Server = await startHttp(
    node,
    config.host,
    config.httpPort,
    startedAt,
    loadNetworkConfig(network, startedAt),
  );
  const port = (http.address() as AddressInfo).port;
  return {
    node,
    healthUrl: `http://${config.host}:${port}/healthz`,
    async stop() {
      http.close();
      await node.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
