/**
 * libp2p for a Node process: a WebSocket listener of its own unless told not to (tabs and other processes dial it
 * directly; the relay lists its address), WebRTC like a tab (@libp2p/webrtc on node-datachannel, whose binary
 * ships in its npm package) for peers without a listener, circuit relay for a reservation and WebRTC signalling,
 * and what every node shares.
 */
// libp2p 3's dependencies call Promise.withResolvers, which Node 20 lacks.
import '../../shared/polyfills.ts';
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import type { PrivateKey } from '@libp2p/interface';
import { webRTC } from '@libp2p/webrtc';
import { webSockets } from '@libp2p/websockets';
import { createLibp2p } from 'libp2p';
import { WebSocket } from 'ws';
import { circuitListeners, sharedLibp2pOptions } from '../libp2p-options.ts';
import type { PeerBans } from '../peer-bans.ts';
import type { Libp2pNode } from '../platform.ts';

export interface NodeLibp2pInit {
  /** Interface and port to listen on (port 0: any free one); null: no listener (behind NAT: WebRTC only). */
  listen: { host: string; port: number } | null;
  /** How many relays to hold a reservation on (one '/p2p-circuit' listener each). */
  relays?: number;
  /** Peers not to dial nor accept (core/peer-bans.ts). */
  bans?: PeerBans;
}

export async function createNodeLibp2p(privateKey: PrivateKey, init: NodeLibp2pInit): Promise<Libp2pNode> {
  // Node 20 has no global WebSocket (22 does); libp2p's WebSocket dialer needs one.
  (globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
  return createLibp2p({
    privateKey,
    addresses: {
      listen: [
        ...circuitListeners(init.relays ?? 1),
        '/webrtc',
        ...(init.listen ? [`/ip4/${init.listen.host}/tcp/${init.listen.port}/ws`] : []),
      ],
    },
    transports: [webSockets(), webRTC({ rtcConfiguration: { iceServers: [] } }), circuitRelayTransport()],
    ...sharedLibp2pOptions(init.bans),
  });
}
