/**
 * The tab's libp2p node: WebSockets to the relay, circuit relay for signalling, WebRTC for direct connections
 * between tabs; noise, yamux, identify, ping, gossipsub. Settings from ../shared/notes/P2P.md.
 */
import { createLibp2p } from 'libp2p';
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { gossipsub } from '@libp2p/gossipsub';
import { createPeerScoreParams } from '@libp2p/gossipsub/score';
import { identify } from '@libp2p/identify';
import type { PrivateKey } from '@libp2p/interface';
import { noise } from '@libp2p/noise';
import { ping } from '@libp2p/ping';
import { webRTC } from '@libp2p/webrtc';
import { webSockets } from '@libp2p/websockets';
import { yamux } from '@libp2p/yamux';
import type { Libp2pNode } from '../platform.ts';

export function createTabLibp2p(privateKey: PrivateKey, iceServers: RTCIceServer[]): Promise<Libp2pNode> {
  return createLibp2p({
    privateKey,
    addresses: { listen: ['/p2p-circuit', '/webrtc'] },
    transports: [webSockets(), webRTC({ rtcConfiguration: { iceServers } }), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // The browser default refuses ws:// and loopback addresses, which is exactly where a local relay lives.
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: {
      // Inbound circuit connections all carry the relay's IP (P2P.md pitfall 2).
      inboundConnectionThreshold: 1000,
      maxIncomingPendingConnections: 100,
    },
    // A slow ping under load must not tear down a healthy connection (pitfall 4).
    connectionMonitor: { abortConnectionOnPingFailure: false, pingInterval: 5000 },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        // Peers behind one relay share its IP (pitfall 3).
        scoreParams: createPeerScoreParams({ IPColocationFactorWeight: 0 }),
      }),
    },
  });
}
