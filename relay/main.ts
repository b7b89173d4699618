/**
 * npm run relay [-- --port 9090 --http-port 9091 ...]: the webtensor relay. Bootstraps tabs, signals WebRTC
 * through circuit relay v2, relays gossip, and reports health. It never sees inference traffic.
 */
import '../shared/polyfills.ts';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, loadNetworkConfig, parseRelayConfig } from './config.ts';
import { startHttp } from './http.ts';
import { loadOrCreateKey } from './key.ts';
import { log } from './log.ts';
import { createRelayNode, type RelayNode } from './node.ts';
import { servePeerList } from './peer-list.ts';

async function main() {
  let config;
  let network;
  const startedAt = Date.now();
  try {
    config = parseRelayConfig(process.argv.slice(2), process.env);
    network = loadNetworkConfig(config.network, startedAt, config.genesisFile);
  } catch (err) {
    if (err instanceof ConfigError) {
      log.error(`bad relay configuration: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  // Signal handlers go in first, so a signal that arrives during start-up still shuts down cleanly.
  const running: { node?: RelayNode; http?: Server } = {};
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('relay stopping', { signal });
    const force = setTimeout(() => {
      log.warn('shutdown took over 5 s; exiting anyway');
      process.exit(1);
    }, 5000);
    force.unref();
    running.http?.close();
    await running.node?.stop();
    log.info('relay stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  const { key, created } = await loadOrCreateKey(config.keyFile);
  const relay = (running.node = await createRelayNode(config, key));
  await servePeerList(relay, config.peerSample);
  const http = (running.http = await startHttp(relay, config.host, config.httpPort, startedAt, network));
  if (stopping) return; // a signal arrived while starting; shutdown() finishes the job
  const httpPort = (http.address() as AddressInfo).port;

  relay.addEventListener('peer:connect', (e) => log.info('peer connected', { peer: e.detail.toString() }));
  relay.addEventListener('peer:disconnect', (e) => log.info('peer disconnected', { peer: e.detail.toString() }));
  relay.services.relay.addEventListener('relay:reservation', () =>
    log.info('reservation granted', { reservations: relay.services.relay.reservations.size }),
  );

  log.info('relay started', {
    peerId: relay.peerId.toString(),
    keyFile: config.keyFile,
    keyCreated: created,
    multiaddrs: relay.getMultiaddrs().map((m) => m.toString()),
    health: `http://${config.host}:${httpPort}/healthz`,
    metrics: `http://${config.host}:${httpPort}/metrics`,
    network: `http://${config.host}:${httpPort}/network`,
    networkId: network.networkId,
    profile: network.profile,
    limits: {
      maxReservations: config.maxReservations,
      maxReservationsPerIp: config.maxReservationsPerIp,
      maxConnectionsPerIp: config.maxConnectionsPerIp,
      connectionRatePerIpPerMinute: config.connectionRatePerIp,
      peerListRatePerMinute: config.peerListRate,
    },
  });
}

main().catch((err: unknown) => {
  log.error('relay failed to start', { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
