/**
 * libp2p for a Node process: a WebSocket listener of its own (tabs and other processes dial it directly; the
 * relay lists its address), circuit relay for a reservation, noise, yamux, identify, ping, gossipsub. No WebRTC
 * yet: @libp2p/webrtc needs node-datachannel's native binary, which does not install offline.
 */
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { gossipsub } from '@libp2p/gossipsub';
import { createPeerScoreParams } from '@libp2p/gossipsub/score';
import { identify } from '@libp2p/identify';
import type { PrivateKey } from '@libp2p/interface';
import { noise } from '@libp2p/noise';
import { ping } from '@libp2p/ping';
import { webSockets } from '@libp2p/websockets';
import { yamux } from '@libp2p/yamux';
import { createLibp2p } from 'libp2p';
import { WebSocket } from 'ws';
import type { Libp2pNode } from '../platform.ts';

export interface NodeLibp2pInit {
  /** Interface and port to listen on (port 0: any free one). */
  host: string;
  port: number;
}

export async function createNodeLibp2p(privateKey: PrivateKey, init: NodeLibp2pInit): Promise<Libp2pNode> {
  // Node 20 has no global WebSocket (22 does); libp2p's WebSocket dialer needs one.
  (globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
  return createLibp2p({
    privateKey,
    addresses: { listen: ['/p2p-circuit', `/ip4/${init.host}/tcp/${init.port}/ws`] },
    transports: [webSockets(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // Relays and peers on loopback and private networks are exactly where local networks live.
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: { inboundConnectionThreshold: 1000, maxIncomingPendingConnections: 100 },
    connectionMonitor: { abortConnectionOnPingFailure: false, pingInterval: 5000 },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        scoreParams: createPeerScoreParams({ IPColocationFactorWeight: 0 }),
      }),
    },
  });
}
