/**
 * The relay's libp2p node: WebSockets listener, noise, yamux, identify, ping, circuit relay v2 server sized for
 * hundreds of tabs, gossipsub that relays the network's topics, and per-IP and per-peer limits (limits.ts,
 * through libp2p's connection gater; the node's `limits` service). Settings from ../shared/notes/P2P.md.
 */
import { readFileSync } from 'node:fs';
import { createLibp2p, type Libp2p } from 'libp2p';
import { circuitRelayServer, type CircuitRelayService } from '@libp2p/circuit-relay-v2';
import { gossipsub, type GossipSub } from '@libp2p/gossipsub';
import { createPeerScoreParams } from '@libp2p/gossipsub/score';
import { identify, type Identify } from '@libp2p/identify';
import { noise } from '@libp2p/noise';
import { ping, type Ping } from '@libp2p/ping';
import { webSockets } from '@libp2p/websockets';
import { yamux } from '@libp2p/yamux';
import type { PrivateKey } from '@libp2p/interface';
import type { RelayConfig } from './config.ts';
import { RelayLimits } from './limits.ts';

export type RelayServices = {
  identify: Identify;
  ping: Ping;
  relay: CircuitRelayService;
  pubsub: GossipSub;
  limits: RelayLimits;
};
export type RelayNode = Libp2p<RelayServices>;

/** How often the relay pings each connection, and how long an answer may take before it closes the connection. */
export const RELAY_PING_INTERVAL_MS = 10_000;
export const RELAY_PING_TIMEOUT_MS = 30_000;

export async function createRelayNode(config: RelayConfig, privateKey: PrivateKey): Promise<RelayNode> {
  const tls = config.tlsCert && config.tlsKey;
  const limits = new RelayLimits(config);
  const node = await createLibp2p({
    privateKey,
    addresses: { listen: [`/ip4/${config.host}/tcp/${config.port}/${tls ? 'tls/ws' : 'ws'}`] },
    transports: [
      webSockets(tls ? { https: { cert: readFileSync(config.tlsCert!), key: readFileSync(config.tlsKey!) } } : {}),
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // Connections and reservations per IP, and their rate (limits.ts).
    connectionGater: limits.gater,
    connectionManager: {
      // libp2p's per-host limit (new connections per second) only backs up the gater's per-minute one, which
      // refuses first and counts what it refuses; both come from --connection-rate-per-ip (P2P.md pitfall 2:
      // every tab of a local network reaches the relay from one IP, so it must be configurable).
      inboundConnectionThreshold: 2 * config.connectionRatePerIp,
      maxIncomingPendingConnections: 1_000,
      maxConnections: 4 * config.maxReservations,
    },
    // libp2p pings every connection and, by default, aborts one whose ping misses a 5 s deadline. Under load (a
    // relay for dozens of nodes, or a peer process busy compiling a model) honest pings take longer, and the relay
    // cut healthy connections: reservations lost, circuits refused NO_RESERVATION (scale.spec; P2P.md pitfall 4).
    // The relay still reaps a peer that stays silent for half a minute, which only a dead one does.
    connectionMonitor: { pingInterval: RELAY_PING_INTERVAL_MS, pingTimeout: { minTimeout: RELAY_PING_TIMEOUT_MS } },
    services: {
      identify: identify(),
      ping: ping(),
      relay: circuitRelayServer({
        reservations: { maxReservations: config.maxReservations },
        maxInboundHopStreams: 4 * config.maxReservations,
        maxOutboundStopStreams: 4 * config.maxReservations,
      }),
      pubsub: gossipsub({
        canRelayMessage: true,
        allowPublishToZeroTopicPeers: true,
        // Peers behind one relay share its IP: no colocation penalty (P2P.md pitfall 3).
        scoreParams: createPeerScoreParams({ IPColocationFactorWeight: 0 }),
      }),
      limits: () => limits,
    },
  });
  limits.attach(node);
  return node;
}
