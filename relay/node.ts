/**
 * The relay's libp2p node: WebSockets listener, noise, yamux, identify, ping, circuit relay v2 server sized for
 * hundreds of tabs, and gossipsub that relays the network's topics. Settings from ../shared/notes/P2P.md.
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

export type RelayServices = { identify: Identify; ping: Ping; relay: CircuitRelayService; pubsub: GossipSub };
export type RelayNode = Libp2p<RelayServices>;

export async function createRelayNode(config: RelayConfig, privateKey: PrivateKey): Promise<RelayNode> {
  const tls = config.tlsCert && config.tlsKey;
  return createLibp2p({
    privateKey,
    addresses: { listen: [`/ip4/${config.host}/tcp/${config.port}/${tls ? 'tls/ws' : 'ws'}`] },
    transports: [
      webSockets(tls ? { https: { cert: readFileSync(config.tlsCert!), key: readFileSync(config.tlsKey!) } } : {}),
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      // Every tab reaches the relay from the same IP on a local network (P2P.md pitfall 2).
      inboundConnectionThreshold: 10_000,
      maxIncomingPendingConnections: 1_000,
      maxConnections: 4 * config.maxReservations,
    },
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
    },
  });
}
