/**
 * npm run relay [-- --port 9090 --http-port 9091 ...]: the webtensor relay. Bootstraps tabs, signals WebRTC
 * through circuit relay v2, relays gossip, and reports health. It never sees inference traffic.
 */
import './polyfill.ts';
import type { AddressInfo } from 'node:net';
import { ConfigError, parseRelayConfig } from './config.ts';
import { startHttp } from './http.ts';
import { loadOrCreateKey } from './key.ts';
import { log } from './log.ts';
import { createRelayNode } from './node.ts';

async function main() {
  let config;
  try {
    config = parseRelayConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      log.error(`bad relay configuration: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const startedAt = Date.now();
  const { key, created } = await loadOrCreateKey(config.keyFile);
  const node = await createRelayNode(config, key);
  const http = await startHttp(node, config.host, config.httpPort, startedAt);
  const httpPort = (http.address() as AddressInfo).port;

  node.addEventListener('peer:connect', (e) => log.info('peer connected', { peer: e.detail.toString() }));
  node.addEventListener('peer:disconnect', (e) => log.info('peer disconnected', { peer: e.detail.toString() }));
  node.services.relay.addEventListener('relay:reservation', () =>
    log.info('reservation granted', { reservations: node.services.relay.reservations.size }),
  );

  log.info('relay started', {
    peerId: node.peerId.toString(),
    keyFile: config.keyFile,
    keyCreated: created,
    multiaddrs: node.getMultiaddrs().map((m) => m.toString()),
    health: `http://${config.host}:${httpPort}/healthz`,
    metrics: `http://${config.host}:${httpPort}/metrics`,
  });

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
    http.close();
    await node.stop();
    log.info('relay stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  log.error('relay failed to start', { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
