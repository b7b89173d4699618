/**
 * RecordGossip between two real libp2p nodes (the project's own options, gossipsub over a WebSocket connection):
 * a connection on which gossipsub has lost its streams carries no records, so it is hung up on once its grace runs
 * out, and only then.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryLedgerStore } from '../memory-ledger-store.ts';
import { createNodeLibp2p } from '../nodejs/libp2p.ts';
import type { Libp2pNode } from '../platform.ts';
import { Store } from '../store.ts';
import { testNetwork } from '../testing/fakes.ts';
import { RecordBook } from './record-book.ts';
import { RecordGossip } from './record-gossip.ts';

const { network, clock } = testNetwork(200);
const GRACE_MS = 1000;
const running: { libp2p: Libp2pNode; gossip: RecordGossip }[] = [];

async function gossipNode() {
  const key = await generateKeyPair('Ed25519');
  const libp2p = await createNodeLibp2p(key, { listen: { host: '127.0.0.1', port: 0 }, relays: 0 });
  const countRefusal = () => {};
  const book = new RecordBook({
    store: new MemoryLedgerStore(),
    key,
    network,
    clock,
    countRefusal,
    lastFinal: new Store(-1),
  });
  await book.start();
  const gossip = new RecordGossip({ libp2p, book, rpc: { countRefusal }, noGossipGraceMs: GRACE_MS });
  gossip.start();
  running.push({ libp2p, gossip });
  return { libp2p, gossip };
}

const streams = (libp2p: Libp2pNode) =>
  libp2p.services.pubsub as unknown as { streamsOutbound: Map<string, unknown>; streamsInbound: Map<string, unknown> };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(async () => {
  for (const { libp2p, gossip } of running.splice(0)) {
    gossip.stop();
    await libp2p.stop();
  }
});

describe('RecordGossip on a real connection', () => {
  it('keeps a connection gossipsub uses, and hangs up on one whose gossipsub streams are gone', async () => {
    const a = await gossipNode();
    const b = await gossipNode();
    const connection = await a.libp2p.dial(b.libp2p.getMultiaddrs()[0]!);
    const bId = b.libp2p.peerId.toString();
    while (!(streams(a.libp2p).streamsOutbound.has(bId) && streams(a.libp2p).streamsInbound.has(bId))) await sleep(50);
    // Gossiping: well past the grace, the connection stays.
    await sleep(3 * GRACE_MS);
    expect(connection.status).toBe('open');
    expect(a.gossip.counts.silent).toBe(0);

    // gossipsub's streams on it are lost (as a reset during set-up loses them); gossipsub never opens new ones.
    for (const stream of connection.streams.filter((s) => s.protocol?.startsWith('/meshsub/')))
      stream.abort(new Error('lost'));
    while (connection.status === 'open' && a.gossip.counts.silent === 0) await sleep(50);
    expect(a.gossip.counts.silent).toBe(1);
    expect(connection.status).not.toBe('open');
  }, 30_000);
});
