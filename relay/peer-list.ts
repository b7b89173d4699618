/**
 * `/webtensor/peers/1`: answer one frame listing the peers that hold a reservation (other than the asker), then
 * close. Tabs poll it to learn whom to dial; this replaces pubsub discovery storms (P2P.md pitfall 5).
 */
import { lpStream } from '@libp2p/utils';
import { MAX_FRAME_BYTES, PEERS_PROTOCOL, encodeFrame } from '../shared/p2p/messages.ts';
import type { RelayNode } from './node.ts';

/** At most this many peers per answer: one frame must stay under MAX_FRAME_BYTES. */
const MAX_LISTED = 1000;

export async function servePeerList(node: RelayNode): Promise<void> {
  await node.handle(
    PEERS_PROTOCOL,
    async (stream, connection) => {
      const asker = connection.remotePeer.toString();
      // A reservation outlives its peer's connection until its TTL runs out: list only peers still connected.
      const peers = [...node.services.relay.reservations.keys()]
        .filter((p) => node.getConnections(p).length > 0)
        .map((p) => p.toString())
        .filter((p) => p !== asker)
        .slice(0, MAX_LISTED);
      const signal = AbortSignal.timeout(5000);
      try {
        await lpStream(stream, { maxDataLength: MAX_FRAME_BYTES }).write(encodeFrame({ peers }), { signal });
        await stream.close({ signal });
      } catch (err) {
        stream.abort(err as Error);
      }
    },
    { maxInboundStreams: 8 },
  );
}
