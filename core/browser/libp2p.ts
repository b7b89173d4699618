/**
 * The tab's libp2p node: WebSockets to the relay, circuit relay for signalling, WebRTC for direct connections
 * between tabs; the rest is what every node shares (core/libp2p-options.ts).
 */
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import type { PrivateKey } from '@libp2p/interface';
import { webRTC } from '@libp2p/webrtc';
import { webSockets } from '@libp2p/websockets';
import { createLibp2p } from 'libp2p';
import { circuitListeners, sharedLibp2pOptions } from '../libp2p-options.ts';
import type { PeerBans } from '../peer-bans.ts';
import type { Libp2pNode } from '../platform.ts';

export function createTabLibp2p(
  privateKey: PrivateKey,
  iceServers: RTCIceServer[],
  relays = 1,
  bans?: PeerBans,
): Promise<Libp2pNode> {
  return createLibp2p({
    privateKey,
    // One '/p2p-circuit' per relay: libp2p makes one reservation for each.
    addresses: { listen: [...circuitListeners(relays), '/webrtc'] },
    transports: [webSockets(), webRTC({ rtcConfiguration: { iceServers } }), circuitRelayTransport()],
    ...sharedLibp2pOptions(bans),
  });
}
