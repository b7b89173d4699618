/**
 * The libp2p settings every webtensor node shares, tab or process: encryption, muxing, monitoring, services.
 * The platforms add their transports and listen addresses. Settings from ../shared/notes/P2P.md.
 */
import { gossipsub } from '@libp2p/gossipsub';
import { createPeerScoreParams } from '@libp2p/gossipsub/score';
import { identify } from '@libp2p/identify';
import { noise } from '@libp2p/noise';
import { ping } from '@libp2p/ping';
import type { PeerId } from '@libp2p/interface';
import { yamux } from '@libp2p/yamux';
import type { PeerBans } from './peer-bans.ts';
import { DIAL_TIMEOUT_MS } from './services/dialer.ts';

/**
 * Connections a node holds at most (libp2p closes the least valued beyond it; the relay's is tagged to stay).
 * A node dials TARGET_PEERS itself (services/discovery.ts); the rest is room for peers dialling in.
 */
export const MAX_CONNECTIONS = 32;

/** Listen addresses asking libp2p's circuit relay transport for one reservation on each of `relays` relays. */
export const circuitListeners = (relays: number): string[] =>
  Array.from({ length: Math.max(1, relays) }, () => '/p2p-circuit');

/** `bans`: peers this node will not dial nor accept (core/peer-bans.ts); none if not given. */
export function sharedLibp2pOptions(bans?: Pick<PeerBans, 'has'>) {
  return {
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // Relays and peers on loopback and private networks are exactly where local networks live (a browser's
    // default gater refuses ws:// and loopback addresses).
    connectionGater: {
      denyDialMultiaddr: () => false,
      denyDialPeer: (peer: PeerId) => bans?.has(peer.toString()) ?? false,
      denyInboundEncryptedConnection: (peer: PeerId) => bans?.has(peer.toString()) ?? false,
    },
    // Bounded on every platform (tabs and Node processes both spread these options, overriding none):
    // - maxConnections: beyond it libp2p refuses inbound connections and prunes the least valued;
    // - maxIncomingPendingConnections: handshakes in progress at once; no more than the connections it may hold;
    // - inboundConnectionThreshold: new inbound connections per second from one host. Inbound circuit and WebRTC
    //   connections all carry the relay's IP (P2P.md pitfall 2), and a swarm of headless nodes shares one
    //   loopback address: a per-host limit of 32 made the 40-node scale test fail to mesh (dial storms of
    //   retries), so it stays high here and the relay limits per IP instead.
    // - addressDialTimeout / dialTimeout: a WebRTC dial through the relay is a relayed connection, a signalling
    //   stream, an offer, an answer, candidates, DTLS and an `init` channel: several relay round trips. libp2p's
    //   defaults (6 s per address, 10 s per dial) suit one TCP handshake; on a loaded relay the relayed connection
    //   alone took ~4.5 s and most WebRTC dials were cut off at 6 s (scale.spec). The Dialer bounds each dial at
    //   DIAL_TIMEOUT_MS anyway (core/services/dialer.ts).
    connectionManager: {
      inboundConnectionThreshold: 1000,
      maxIncomingPendingConnections: 100,
      maxConnections: MAX_CONNECTIONS,
      addressDialTimeout: DIAL_TIMEOUT_MS,
      dialTimeout: DIAL_TIMEOUT_MS,
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
  };
}
