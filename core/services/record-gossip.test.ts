/**
 * Records by gossip, with the real record book and admission over the in-memory store and real signed records:
 * our records go out on the records topic; arriving ones pass the topic validator (checks, then admission's
 * state checks against a real replay) and only accepted ones are stored; rejected ones cost the sender score
 * until it is hung up on. The pubsub is a fake that runs validators and scores as gossipsub does.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import { beforeEach, describe, expect, it } from 'vitest';
import { Admission } from '../../shared/ledger/admission.ts';
import type { LedgerRecord } from '../../shared/ledger/records.ts';
import { replay } from '../../shared/ledger/replay.ts';
import { snapshotOf } from '../../shared/ledger/snapshot.ts';
import { actor, claim, make, type Actor } from '../../shared/ledger/testing.ts';
import { TOPICS } from '../../shared/names.ts';
import { MemoryLedgerStore } from '../memory-ledger-store.ts';
import { PeerBans } from '../peer-bans.ts';
import { Store } from '../store.ts';
import { FakePubsub, fakeLibp2p, testNetwork } from '../testing/fakes.ts';
import { RecordBook } from './record-book.ts';
import { RECORDS_TOPIC_SCORE, RecordGossip } from './record-gossip.ts';

const { network, clock } = testNetwork(200);
const topic = TOPICS.records(network.networkId);
let store: MemoryLedgerStore;
let book: RecordBook;
let pubsub: FakePubsub;
let libp2p: ReturnType<typeof fakeLibp2p>;
let refused: string[];
let gossip: RecordGossip;
let bans: PeerBans;
let alice: Actor;
let bob: Actor;
let mallory: Actor;

const encode = (record: unknown) => new TextEncoder().encode(JSON.stringify(record));
const transfer = async (who: Actor, block = 198, amount = '1') =>
  (await make(network, who, 'transfer', block, { to: bob.id, amount })).record;

beforeEach(async () => {
  const key = await generateKeyPair('Ed25519');
  store = new MemoryLedgerStore();
  refused = [];
  const countRefusal = (peer: string) => void refused.push(peer);
  [alice, bob, mallory] = await Promise.all([actor(), actor(), actor()]);
  // Alice holds 1000 rao by a replayed faucet claim; Mallory holds nothing.
  const admission = new Admission(network);
  const funded = await claim(network, alice, 150, 1000n);
  admission.rebase(snapshotOf(replay(network, [funded], 190), 1, 190, 0));
  book = new RecordBook({ store, key, network, clock, countRefusal, admission, lastFinal: new Store(-1) });
  await book.start();
  pubsub = new FakePubsub();
  libp2p = fakeLibp2p(key, pubsub);
  bans = new PeerBans();
  gossip = new RecordGossip({ libp2p, book, rpc: { countRefusal }, bans });
  gossip.start();
});

describe('RecordGossip', () => {
  it('subscribes to the network’s records topic with a validator and the topic’s score parameters', () => {
    expect(pubsub.topics).toEqual([topic]);
    expect(pubsub.topicValidators.has(topic)).toBe(true);
    expect(pubsub.score.params.topics[topic]).toBe(RECORDS_TOPIC_SCORE);
  });

  it('publishes every record this node signs, as JSON on the records topic', async () => {
    // (An unfunded transfer would not even be signed: the node's own records pass admission too.)
    await expect(book.publish('transfer', { to: bob.id, amount: '2' })).rejects.toMatchObject({ code: 'overspend' });
    const mine = await book.publish('faucet.claim', { amount: '2' });
    expect(pubsub.published.map((p) => p.topic)).toEqual([topic]);
    expect(JSON.parse(new TextDecoder().decode(pubsub.published[0]!.data)) as LedgerRecord).toEqual(mine);
  });

  it('accepts and stores a funded record, as gossip from the peer that forwarded it', async () => {
    const record = await transfer(alice);
    expect(await pubsub.deliver(topic, encode(record), bob.id)).toBe('accept');
    expect(await store.all()).toMatchObject([{ record, source: `gossip:${bob.id}` }]);
    expect(refused).toEqual([]);
    // Records that arrive are not published again by this node (gossipsub forwards what was accepted).
    expect(pubsub.published).toEqual([]);
    expect(gossip.counts).toMatchObject({ accepted: 1, rejected: 0 });
  });

  it('ignores a record it already holds (gossipsub does not forward it again)', async () => {
    const record = await transfer(alice);
    await pubsub.deliver(topic, encode(record), bob.id);
    expect(await pubsub.deliver(topic, encode(record), alice.id)).toBe('ignore');
    expect(await store.count()).toBe(1);
  });

  it('rejects bytes that are not JSON and counts them against the sender', async () => {
    expect(await pubsub.deliver(topic, new Uint8Array([0xff, 0x00, 0xfe]), bob.id)).toBe('reject');
    expect(refused).toEqual([bob.id]);
  });

  it('rejects an unfunded transfer without storing it: admission checks the balance before storage', async () => {
    expect(await pubsub.deliver(topic, encode(await transfer(mallory)), bob.id)).toBe('reject');
    expect(await store.count()).toBe(0);
    expect(book.state.get().refused).toBe(1);
  });

  it('rejects a spend of what pending records already spent (the balance net of pending records)', async () => {
    expect(await pubsub.deliver(topic, encode(await transfer(alice, 198, '600')), bob.id)).toBe('accept');
    expect(await pubsub.deliver(topic, encode(await transfer(alice, 198, '600')), bob.id)).toBe('reject');
    expect(await store.count()).toBe(1);
  });

  it('ignores a record outside the gossip window: the sender may only be slow', async () => {
    expect(await pubsub.deliver(topic, encode(await transfer(alice, 139)), bob.id)).toBe('ignore');
    expect(await store.count()).toBe(0);
  });

  it('hangs up on a peer whose rejected messages cross the graylist threshold, and only on it', async () => {
    await pubsub.deliver(topic, encode(await transfer(alice)), bob.id);
    // Unfunded transfers, each a first record (a gap would be ignored, not rejected): about 13 cross the line.
    for (let k = 0; k < 20; k++) {
      const junk = await make(network, mallory, 'transfer', 198, { to: bob.id, amount: String(k + 1) }, 1);
      await pubsub.deliver(topic, encode(junk.record), mallory.id);
    }
    await new Promise((r) => setTimeout(r, 0));
    expect(pubsub.getScore(mallory.id)).toBeLessThan(-80);
    expect(libp2p.hungUp).toContain(mallory.id);
    expect(libp2p.hungUp).not.toContain(bob.id);
    // Banned: libp2p's gater keeps it away, and what it still sends is rejected unread.
    expect(bans.has(mallory.id)).toBe(true);
    expect(bans.has(bob.id)).toBe(false);
    expect(await pubsub.deliver(topic, encode(await transfer(alice)), mallory.id)).toBe('reject');
    expect(await store.count()).toBe(1);
  });

  it('ignores a record whose predecessor has not arrived, but rejects a flood of them past a budget', async () => {
    const first = await transfer(alice);
    const second = await transfer(alice);
    expect(await pubsub.deliver(topic, encode(second), bob.id)).toBe('ignore');
    expect(await pubsub.deliver(topic, encode(first), bob.id)).toBe('accept');
    expect(await pubsub.deliver(topic, encode(second), bob.id)).toBe('accept');
    const verdicts: string[] = [];
    for (let k = 0; k < 110; k++) {
      const gap = await make(network, mallory, 'transfer', 198, { to: bob.id, amount: String(k + 1) }, 5);
      verdicts.push(await pubsub.deliver(topic, encode(gap.record), mallory.id));
    }
    expect(verdicts.filter((v) => v === 'ignore')).toHaveLength(100);
    expect(verdicts.slice(100).every((v) => v === 'reject')).toBe(true);
    expect(await store.count()).toBe(2);
  });

  it('neither publishes nor validates once stopped', async () => {
    gossip.stop();
    await book.publish('faucet.claim', { amount: '2' });
    expect(pubsub.published).toEqual([]);
    expect(pubsub.topicValidators.has(topic)).toBe(false);
  });
});
