/**
 * libp2p for a Node process: a WebSocket listener of its own (tabs and other processes dial it directly; the
 * relay lists its address), circuit relay for a reservation, and what every node shares. No WebRTC
 * yet: @libp2p/webrtc needs node-datachannel's native binary, which does not install offline.
 */
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import type { PrivateKey } from '@libp2p/interface';
import { webSockets } from '@libp2p/websockets';
import { createLibp2p } from 'libp2p';
import { WebSocket } from 'ws';
import { sharedLibp2pOptions } from '../libp2p-options.ts';
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
    ...sharedLibp2pOptions(),
  });
}
