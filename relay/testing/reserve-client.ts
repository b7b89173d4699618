/**
 * Test helper (run with node --experimental-websocket): a real libp2p peer that dials the relay given as
 * argv[2], makes a circuit relay v2 reservation, prints "reserved <circuit multiaddr>", and stays until killed.
 */
import '../../shared/polyfills.ts';
import { createLibp2p } from 'libp2p';
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { identify } from '@libp2p/identify';
import { noise } from '@libp2p/noise';
import { ping } from '@libp2p/ping';
import { webSockets } from '@libp2p/websockets';
import { yamux } from '@libp2p/yamux';
import { multiaddr } from '@multiformats/multiaddr';

const relay = process.argv[2];
if (!relay) throw new Error('usage: reserve-client RELAY_MULTIADDR');
const node = await createLibp2p({
  addresses: { listen: ['/p2p-circuit'] },
  transports: [webSockets(), circuitRelayTransport()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false },
  services: { identify: identify(), ping: ping() },
});
await node.dial(multiaddr(relay));
const deadline = Date.now() + 15_000;
while (Date.now() < deadline) {
  const circuit = node.getMultiaddrs().find((m) => m.toString().includes('/p2p-circuit'));
  if (circuit) {
    console.log(`reserved ${circuit.toString()}`);
    break;
  }
  await new Promise((r) => setTimeout(r, 100));
}
process.on('SIGTERM', () => {
  void Promise.resolve(node.stop()).then(() => process.exit(0));
});
