/**
 * Announcements: short texts on a gossipsub topic every node subscribes to (the mesh demo, and how tests see
 * gossip reach every node). The last 100 are kept; a malformed message counts against its sender.
 */
import { z } from 'zod';
import { decodeFrame, encodeFrame } from '../../shared/p2p/messages.ts';
import { TOPICS } from '../../shared/names.ts';
import type { Clock, Libp2pNode } from '../platform.ts';
import { Store } from '../store.ts';
import type { RpcRouter } from './rpc.ts';

export interface Announcement {
  from: string;
  text: string;
  at: number;
}

const announceSchema = z.object({ text: z.string().max(1000) });

export interface AnnouncementsComponents {
  libp2p: Libp2pNode;
  rpc: Pick<RpcRouter, 'countRefusal'>;
  clock: Clock;
}

export class Announcements {
  readonly messages = new Store<readonly Announcement[]>([]);
  private readonly onMessage = (e: CustomEvent<{ topic: string; type: string; data: Uint8Array; from?: unknown }>) => {
    const m = e.detail;
    if (m.topic !== TOPICS.announce || m.type !== 'signed') return;
    const from = String(m.from);
    try {
      this.remember({ from, text: decodeFrame(m.data, announceSchema).text, at: this.components.clock.now() });
    } catch {
      this.components.rpc.countRefusal(from);
    }
  };

  constructor(private readonly components: AnnouncementsComponents) {}

  start(): void {
    const pubsub = this.components.libp2p.services.pubsub;
    pubsub.subscribe(TOPICS.announce);
    pubsub.addEventListener('message', this.onMessage as never);
  }

  stop(): void {
    this.components.libp2p.services.pubsub.removeEventListener('message', this.onMessage as never);
  }

  async publish(text: string): Promise<void> {
    const { libp2p, clock } = this.components;
    await libp2p.services.pubsub.publish(TOPICS.announce, encodeFrame({ text }));
    // Gossipsub does not deliver to the publisher; show our own message as sent.
    this.remember({ from: libp2p.peerId.toString(), text, at: clock.now() });
  }

  private remember(message: Announcement): void {
    this.messages.set([...this.messages.get(), message].slice(-100));
  }
}
