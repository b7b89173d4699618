/**
 * Diagnostics a peer may ask for: `node.echo`, `node.info` and `node.count` on `/webtensor/rpc/1`, and a bench
 * sink that counts the bytes a peer streams (throughput measurements). Each is bounded: 16 KiB echoes, 100
 * counted chunks, 64 MiB per bench stream.
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { lpStream } from '@libp2p/utils';
import {
  benchReceiptSchema,
  decodeFrame,
  encodeFrame,
  MAX_BENCH_BYTES,
  MAX_FRAME_BYTES,
  RpcError,
} from '../../shared/p2p/messages.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import type { Libp2pNode } from '../platform.ts';
import type { PeerTable } from './peers.ts';
import type { RpcRouter } from './rpc.ts';

export interface DiagnosticsComponents {
  libp2p: Libp2pNode;
  rpc: RpcRouter;
  peers: PeerTable;
  slot: number | null;
}

export class Diagnostics {
  constructor(private readonly components: DiagnosticsComponents) {}

  async start(): Promise<void> {
    const { libp2p, rpc, peers, slot } = this.components;
    await rpc.handle(PROTOCOLS.rpc, {
      'node.echo': {
        check: (p) => (JSON.stringify(p).length <= 16_384 ? null : 'echo params must be at most 16 KiB'),
        run: async (p) => p,
      },
      'node.info': { run: async () => ({ peerId: libp2p.peerId.toString(), slot, peers: peers.peers.get().length }) },
      'node.count': {
        check: (p) =>
          Number.isInteger(p) && (p as number) >= 0 && (p as number) <= 100 ? null : 'count must be an integer 0-100',
        run: async (p, ctx) => {
          for (let k = 0; k < (p as number); k++) await ctx.emit(k);
          return p;
        },
      },
    });
    await libp2p.handle(
      PROTOCOLS.benchSink,
      async (stream) => {
        let received = 0;
        try {
          for await (const chunk of stream) {
            received += chunk.byteLength;
            if (received > MAX_BENCH_BYTES) throw new Error(`more than ${MAX_BENCH_BYTES} bytes`);
          }
          const signal = AbortSignal.timeout(5000);
          await lpStream(stream, { maxDataLength: MAX_FRAME_BYTES }).write(encodeFrame({ received }), { signal });
          await stream.close({ signal });
        } catch (err) {
          stream.abort(err as Error);
        }
      },
      { maxInboundStreams: 2 },
    );
  }

  /** Stream `bytes` to a peer's bench sink; elapsed ms once it confirms receipt. */
  async throughput(peer: string, bytes: number): Promise<{ ms: number; received: number }> {
    if (!Number.isInteger(bytes) || bytes <= 0 || bytes > MAX_BENCH_BYTES)
      throw new RpcError('bad-params', `bytes must be an integer from 1 to ${MAX_BENCH_BYTES}`);
    const signal = AbortSignal.timeout(60_000);
    const stream = await this.components.libp2p.dialProtocol(peerIdFromString(peer), PROTOCOLS.benchSink, { signal });
    const chunk = new Uint8Array(64 * 1024);
    const start = performance.now();
    for (let sent = 0; sent < bytes; sent += chunk.byteLength) {
      if (!stream.send(chunk.subarray(0, Math.min(chunk.byteLength, bytes - sent)))) await stream.onDrain({ signal });
    }
    await stream.close({ signal });
    const receipt = decodeFrame(
      (await lpStream(stream, { maxDataLength: MAX_FRAME_BYTES }).read({ signal })).subarray(),
      benchReceiptSchema,
    );
    return { ms: performance.now() - start, received: receipt.received };
  }
}
