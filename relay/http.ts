/**
 * The relay's HTTP port: `/healthz` (JSON: status, peer id and the multiaddrs tabs dial), `/network` (the
 * network config every node replays the ledger with) and `/metrics` (Prometheus text). CORS is open so a page
 * on another port can read them.
 */
import { createServer, type Server } from 'node:http';
import type { NetworkConfig } from '../shared/ledger/config.ts';
import { REFUSAL_REASONS } from './limits.ts';
import type { RelayNode } from './node.ts';

export function relayMetrics(node: RelayNode, startedAt: number): string {
  const connections = node.getConnections();
  const lines = [
    ['webtensor_relay_connections', 'Open libp2p connections.', connections.length],
    [
      'webtensor_relay_peers',
      'Distinct connected peers.',
      new Set(connections.map((c) => c.remotePeer.toString())).size,
    ],
    ['webtensor_relay_reservations', 'Circuit relay v2 reservations held.', node.services.relay.reservations.size],
    ['webtensor_relay_gossip_topics', 'Gossipsub topics seen.', node.services.pubsub.getTopics().length],
    ['webtensor_relay_uptime_seconds', 'Seconds since the relay started.', Math.round((Date.now() - startedAt) / 1000)],
    ['webtensor_relay_resident_memory_bytes', 'Resident set size of the relay process.', process.memoryUsage().rss],
  ] as const;
  const refused = node.services.limits.refused;
  return (
    lines.map(([name, help, value]) => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${value}\n`).join('') +
    '# HELP webtensor_relay_refused_total Connections, reservations and peer-list requests refused by a limit, by reason.\n' +
    '# TYPE webtensor_relay_refused_total counter\n' +
    REFUSAL_REASONS.map((reason) => `webtensor_relay_refused_total{reason="${reason}"} ${refused[reason]}\n`).join('')
  );
}

export function startHttp(
  node: RelayNode,
  host: string,
  port: number,
  startedAt: number,
  network: NetworkConfig,
): Promise<Server> {
  const networkJson = JSON.stringify(network) + '\n';
  const server = createServer((req, res) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    if (req.method !== 'GET') {
      res.writeHead(405, { 'Content-Type': 'text/plain' }).end('only GET is supported\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      const body = {
        status: node.status === 'started' ? 'ok' : node.status,
        peerId: node.peerId.toString(),
        multiaddrs: node.getMultiaddrs().map((m) => m.toString()),
        reservations: node.services.relay.reservations.size,
      };
      res
        .writeHead(node.status === 'started' ? 200 : 503, { 'Content-Type': 'application/json' })
        .end(JSON.stringify(body) + '\n');
    } else if (path === '/network') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(networkJson);
    } else if (path === '/metrics') {
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }).end(relayMetrics(node, startedAt));
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /healthz, /network or /metrics\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
