/**
 * Test helper (run with node --experimental-websocket): real libp2p peers that dial the relay given as argv[2],
 * each make a circuit relay v2 reservation and print "reserved <circuit multiaddr>", then stay until killed.
 * `--count N` runs N identities in this one process (an attacker with many keys on one machine); `--from IP`
 * connects from that local address (127.0.0.2, say: on Linux all of 127/8 is loopback), so tests on one machine
 * can show what per-IP limits do to two different addresses.
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
import type { Libp2p } from '@libp2p/interface';
import { WebSocket } from 'ws';

const [relay, ...rest] = process.argv.slice(2);
if (!relay) throw new Error('usage: reserve-client RELAY_MULTIADDR [--count N] [--from IP]');
const option = (name: string) => {
  const at = rest.indexOf(name);
  return at >= 0 ? rest[at + 1] : undefined;
};
const count = Number(option('--count') ?? 1);
const from = option('--from');
if (from) {
  // libp2p's WebSocket transport uses the global WebSocket: bind its client sockets to `from`.
  (globalThis as { WebSocket?: unknown }).WebSocket = class extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols, { localAddress: from });
    }
  };
}

const nodes: Libp2p[] = [];
process.on('SIGTERM', () => {
  void Promise.all(nodes.map((n) => n.stop())).then(() => process.exit(0));
});

async function reserve(): Promise<void> {
  const node = await createLibp2p({
    addresses: { listen: ['/p2p-circuit'] },
    transports: [webSockets(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false },
    services: { identify: identify(), ping: ping() },
  });
  nodes.push(node);
  try {
    await node.dial(multiaddr(relay!));
  } catch (err) {
    console.log(`refused ${node.peerId.toString()} ${(err as Error).message}`);
    return;
  }
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const circuit = node.getMultiaddrs().find((m) => m.toString().includes('/p2p-circuit'));
    if (circuit) {
      console.log(`reserved ${circuit.toString()}`);
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

await Promise.all(Array.from({ length: count }, () => reserve()));
