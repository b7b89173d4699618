/**
 * Records by gossip: this node's own records go out on the network's records topic as soon as they are stored,
 * and records that arrive on it are checked (with the gossip age limit) before they are stored. Bytes that are
 * not a JSON record count against the peer that sent them.
 */
import { TOPICS } from '../../shared/names.ts';
import type { Libp2pNode } from '../platform.ts';
import type { RecordBook } from './record-book.ts';
import type { RpcRouter } from './rpc.ts';

export interface RecordGossipComponents {
  libp2p: Libp2pNode;
  book: RecordBook;
  rpc: Pick<RpcRouter, 'countRefusal'>;
}

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

export class RecordGossip {
  private readonly topic: string;
  private stopPublishing: (() => void) | null = null;
  private readonly onMessage = (e: CustomEvent<{ topic: string; type: string; data: Uint8Array; from?: unknown }>) => {
    const m = e.detail;
    if (m.topic !== this.topic || m.type !== 'signed') return;
    const from = String(m.from);
    let raw: unknown;
    try {
      raw = JSON.parse(decoder.decode(m.data));
    } catch {
      this.components.rpc.countRefusal(from);
      return;
    }
    // A storage failure is shown in the record book's state.
    this.components.book.accept([raw], `gossip:${from}`).catch(() => {});
  };

  constructor(private readonly components: RecordGossipComponents) {
    this.topic = TOPICS.records(components.book.network.networkId);
  }

  start(): void {
    const { libp2p, book } = this.components;
    libp2p.services.pubsub.subscribe(this.topic);
    libp2p.services.pubsub.addEventListener('message', this.onMessage as never);
    this.stopPublishing = book.onPublished((records) => {
      for (const record of records)
        // No subscribers yet is fine: sync delivers it later.
        void libp2p.services.pubsub.publish(this.topic, encoder.encode(JSON.stringify(record))).catch(() => {});
    });
  }

  stop(): void {
    this.components.libp2p.services.pubsub.removeEventListener('message', this.onMessage as never);
    this.stopPublishing?.();
  }
}
