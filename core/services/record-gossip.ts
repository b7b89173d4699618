/**
 * Records by gossip: this node's own records go out on the network's records topic as soon as they are stored,
 * and records that arrive on it pass a gossipsub topic validator before anything else sees them: the record book
 * checks them (shape, signature, clock, then admission's state checks) and stores the good ones. gossipsub
 * forwards only what the validator accepts; a rejected message lowers its sender's peer score (the records
 * topic's score parameters below), and a sender whose score falls under the graylist threshold is hung up on.
 */
import { TopicValidatorResult } from '@libp2p/gossipsub';
import { createTopicScoreParams, type PeerScoreParams, type PeerScoreThresholds } from '@libp2p/gossipsub/score';
import type { PeerId } from '@libp2p/interface';
import { UNCERTAIN_REFUSALS } from '../../shared/ledger/admission.ts';
import { TOPICS } from '../../shared/names.ts';
import type { PeerBans } from '../peer-bans.ts';
import type { Libp2pNode } from '../platform.ts';
import type { RecordBook } from './record-book.ts';
import type { RpcRouter } from './rpc.ts';

export interface RecordGossipComponents {
  libp2p: Libp2pNode;
  book: Pick<RecordBook, 'receive' | 'onPublished' | 'network'>;
  rpc: Pick<RpcRouter, 'countRefusal'>;
  /** Where a peer hung up on is banned for a while (libp2p's gater then refuses it); none: only hung up on. */
  bans?: Pick<PeerBans, 'ban' | 'has'>;
  /** How long a direct connection to a gossipsub peer may carry no gossipsub stream (tests shorten it). */
  noGossipGraceMs?: number;
}

/**
 * A direct connection to a peer that speaks gossipsub but on which gossipsub holds no stream after this long is
 * hung up on (the Dialer connects again, and gossipsub opens its streams on the new connection). gossipsub opens
 * its stream once, when the connection opens, and never again: if that stream is lost (reset while the connection
 * was being set up, say), the connection carries RPC and sync but no records or subscriptions. Seen in
 * scale.spec: nodes with two direct peers and no gossipsub peer at all.
 */
export const NO_GOSSIP_GRACE_MS = 60_000;
const GOSSIPSUB_PROTOCOLS = ['/meshsub/1.0.0', '/meshsub/1.1.0', '/meshsub/1.2.0'];

/**
 * The records topic's peer scoring: each rejected message costs its sender (P4: -0.5 times the square of the
 * count, decaying by a tenth a second), so a few mistakes from an honest peer whose view differs from ours (a
 * spend whose funding record reached it first) fade within a minute, while a flood crosses gossipsub's graylist
 * threshold (-80 by default) after about thirteen. Mesh delivery
 * counts (P3) are off: records are few and bursty, and a quiet honest peer must not lose score for it.
 */
export const RECORDS_TOPIC_SCORE = createTopicScoreParams({
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1000,
  timeInMeshCap: 300,
  firstMessageDeliveriesWeight: 1,
  firstMessageDeliveriesDecay: 0.5,
  firstMessageDeliveriesCap: 10,
  meshMessageDeliveriesWeight: 0,
  meshFailurePenaltyWeight: 0,
  invalidMessageDeliveriesWeight: -0.5,
  invalidMessageDeliveriesDecay: 0.9,
});

/**
 * Public members of gossipsub's implementation class that its exported interface leaves out: the live score
 * parameters (a topic's are added once the network, and so the topic, is known) and a peer's score.
 */
interface ScoredPubsub {
  score: { params: PeerScoreParams };
  opts: { scoreThresholds: PeerScoreThresholds };
  getScore(peer: string): number;
}
const scored = (pubsub: unknown) => pubsub as ScoredPubsub;

/** gossipsub's streams per peer id (implementation members its interface leaves out). */
interface GossipStreams {
  streamsOutbound: Map<string, unknown>;
  streamsInbound: Map<string, unknown>;
}

/** Messages a peer may send in a window that are refused for reasons not its fault (see `validate`). */
const IGNORES_PER_WINDOW = 100;
const IGNORE_WINDOW_MS = 10_000;

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

export interface RecordGossipState {
  accepted: number;
  ignored: number;
  rejected: number;
  /** Peers hung up on for a score under the graylist threshold. */
  dropped: number;
  /** Connections hung up on because gossipsub held no stream on them (NO_GOSSIP_GRACE_MS). */
  silent: number;
}

export class RecordGossip {
  private readonly topic: string;
  private stopPublishing: (() => void) | null = null;
  readonly counts: RecordGossipState = { accepted: 0, ignored: 0, rejected: 0, dropped: 0, silent: 0 };
  private watchdog: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly components: RecordGossipComponents) {
    this.topic = TOPICS.records(components.book.network.networkId);
  }

  /** The verdict on one message: accept (stored, forward it), ignore (not the sender's fault) or reject. */
  private readonly validate = async (peer: PeerId, message: { data: Uint8Array }): Promise<TopicValidatorResult> => {
    const from = peer.toString();
    // A banned peer's messages still in flight when it was hung up on: not even parsed.
    if (this.components.bans?.has(from)) return TopicValidatorResult.Reject;
    let raw: unknown;
    try {
      raw = JSON.parse(decoder.decode(message.data));
    } catch {
      this.components.rpc.countRefusal(from);
      return this.verdict(peer, TopicValidatorResult.Reject);
    }
    const [outcome] = await this.components.book.receive([raw], `gossip:${from}`).catch(() => []);
    if (!outcome) return this.verdict(peer, TopicValidatorResult.Ignore); // storage failed: shown in the book's state
    if (outcome.stored) return this.verdict(peer, TopicValidatorResult.Accept);
    if ('held' in outcome) return this.verdict(peer, TopicValidatorResult.Ignore);
    const uncertain = UNCERTAIN_REFUSALS.has(outcome.refused.code);
    // Uncertain refusals cost nothing, up to a budget per peer: past it, a peer sending gaps and stale records by
    // the hundred is flooding, and is rejected like any other junk.
    if (uncertain && this.withinIgnoreBudget(from)) return this.verdict(peer, TopicValidatorResult.Ignore);
    return this.verdict(peer, TopicValidatorResult.Reject);
  };

  private readonly ignores = new Map<string, { count: number; since: number }>();

  private withinIgnoreBudget(peer: string): boolean {
    const now = Date.now();
    const entry = this.ignores.get(peer);
    if (!entry || now - entry.since > IGNORE_WINDOW_MS) {
      // Bounded memory: forget every window that has passed when a new one starts.
      for (const [p, e] of this.ignores) if (now - e.since > IGNORE_WINDOW_MS) this.ignores.delete(p);
      this.ignores.set(peer, { count: 1, since: now });
      return true;
    }
    entry.count++;
    return entry.count <= IGNORES_PER_WINDOW;
  }

  private verdict(peer: PeerId, result: TopicValidatorResult): TopicValidatorResult {
    const { libp2p } = this.components;
    if (result === TopicValidatorResult.Accept) this.counts.accepted++;
    else if (result === TopicValidatorResult.Ignore) this.counts.ignored++;
    else {
      this.counts.rejected++;
      // gossipsub scores the rejection once we return; hang up once the score has crossed the graylist line.
      queueMicrotask(() => {
        const pubsub = scored(libp2p.services.pubsub);
        if (pubsub.getScore(peer.toString()) >= pubsub.opts.scoreThresholds.graylistThreshold) return;
        this.counts.dropped++;
        this.components.bans?.ban(peer.toString());
        void libp2p.hangUp(peer).catch(() => {});
      });
    }
    return result;
  }

  start(): void {
    const { libp2p, book } = this.components;
    const pubsub = libp2p.services.pubsub;
    scored(pubsub).score.params.topics[this.topic] = RECORDS_TOPIC_SCORE;
    pubsub.topicValidators.set(this.topic, this.validate);
    pubsub.subscribe(this.topic);
    this.stopPublishing = book.onPublished((records) => {
      for (const record of records)
        // No subscribers yet is fine: sync delivers it later.
        void pubsub.publish(this.topic, encoder.encode(JSON.stringify(record))).catch(() => {});
    });
    const grace = this.components.noGossipGraceMs ?? NO_GOSSIP_GRACE_MS;
    this.watchdog = setInterval(() => void this.hangUpSilent(grace), Math.min(5000, grace / 2));
    (this.watchdog as { unref?: () => void }).unref?.();
  }

  stop(): void {
    this.components.libp2p.services.pubsub.topicValidators.delete(this.topic);
    this.stopPublishing?.();
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
  }

  /** Hang up direct connections to gossipsub peers on which gossipsub has held no stream for `grace` ms. */
  private async hangUpSilent(grace: number): Promise<void> {
    const { libp2p } = this.components;
    // Both ways: our stream carries our subscriptions and records to the peer, its stream brings its own.
    const { streamsOutbound, streamsInbound } = libp2p.services.pubsub as unknown as GossipStreams;
    const gossiping = (peer: string) => streamsOutbound.has(peer) && streamsInbound.has(peer);
    const now = Date.now();
    for (const connection of libp2p.getConnections()) {
      const peer = connection.remotePeer;
      if (connection.limits || connection.status !== 'open' || gossiping(peer.toString())) continue;
      if (now - connection.timeline.open < grace) continue;
      // Only a peer that says it speaks gossipsub (identify) is expected to.
      const protocols = await libp2p.peerStore
        .get(peer)
        .then((p) => p.protocols)
        .catch(() => [] as string[]);
      if (!protocols.some((p) => GOSSIPSUB_PROTOCOLS.includes(p))) continue;
      this.counts.silent++;
      await connection.close().catch((err: Error) => connection.abort(err));
    }
  }
}
