/**
 * Records by gossip, with the real record book over the in-memory store and real signed records: our records go
 * out on the records topic, arriving ones are checked with the gossip age limit, and garbage counts against the
 * peer that sent it. The pubsub is a fake.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LedgerRecord } from '../../shared/ledger/records.ts';
import { actor, make, type Actor } from '../../shared/ledger/testing.ts';
import { TOPICS } from '../../shared/names.ts';
import { MemoryLedgerStore } from '../memory-ledger-store.ts';
import { Store, waitFor } from '../store.ts';
import { FakePubsub, fakeLibp2p, settle, testNetwork } from '../testing/fakes.ts';
import { RecordBook } from './record-book.ts';
import { RecordGossip } from './record-gossip.ts';

const { network, clock } = testNetwork(200);
const topic = TOPICS.records(network.networkId);
let store: MemoryLedgerStore;
let book: RecordBook;
let pubsub: FakePubsub;
let refused: Store<string[]>;
let gossip: RecordGossip;
let alice: Actor;
let bob: Actor;

const encode = (record: unknown) => new TextEncoder().encode(JSON.stringify(record));
const until = <T>(store: Store<T>, test: (value: T) => boolean) => waitFor(store, test, AbortSignal.timeout(2000));
const transfer = async (block = 198) =>
  (await make(network, alice, 'transfer', block, { to: bob.id, amount: '1' })).record;

beforeEach(async () => {
  const key = await generateKeyPair('Ed25519');
  store = new MemoryLedgerStore();
  refused = new Store<string[]>([]);
  const countRefusal = (peer: string) => refused.set([...refused.get(), peer]);
  book = new RecordBook({ store, key, network, clock, countRefusal, lastFinal: new Store(-1) });
  await book.start();
  pubsub = new FakePubsub();
  gossip = new RecordGossip({ libp2p: fakeLibp2p(key, pubsub), book, rpc: { countRefusal } });
  gossip.start();
  [alice, bob] = await Promise.all([actor(), actor()]);
});

afterEach(() => gossip.stop());

describe('RecordGossip', () => {
  it('subscribes to the network’s records topic', () => {
    expect(pubsub.topics).toEqual([topic]);
  });

  it('publishes every record this node signs, as JSON on the records topic', async () => {
    const mine = await book.publish('transfer', { to: bob.id, amount: '2' });
    await book.accept([await transfer()], `sync:${bob.id}`);
    expect(pubsub.published.map((p) => p.topic)).toEqual([topic]);
    expect(JSON.parse(new TextDecoder().decode(pubsub.published[0]!.data)) as LedgerRecord).toEqual(mine);
  });

  it('stores a valid record that arrives, as gossip from the peer that forwarded it', async () => {
    const record = await transfer();
    pubsub.deliver(topic, encode(record), bob.id);
    await until(book.state, (s) => s.records === 1);
    expect(await store.all()).toMatchObject([{ record, source: `gossip:${bob.id}` }]);
    expect(refused.get()).toEqual([]);
    // Records that arrive are not gossiped again by this node (gossipsub forwards them).
    expect(pubsub.published).toEqual([]);
  });

  it('counts bytes that are not JSON against the peer that sent them', async () => {
    pubsub.deliver(topic, new Uint8Array([0xff, 0x00, 0xfe]), bob.id);
    expect(refused.get()).toEqual([bob.id]);
    expect(book.state.get().refused).toBe(0);
  });

  it('counts a record the book refuses against the peer that sent it', async () => {
    const record = await transfer();
    pubsub.deliver(topic, encode({ ...record, seq: record.seq + 1 }), bob.id);
    await until(book.state, (s) => s.refused === 1);
    expect(refused.get()).toEqual([bob.id]);
    expect(await store.count()).toBe(0);
  });

  it('applies the gossip age limit: records from epochs closed for good are refused', async () => {
    // Block 200: blocks before 140 are final (see RecordBook.minGossipBlock).
    pubsub.deliver(topic, encode(await transfer(139)), bob.id);
    await until(refused, (r) => r.length === 1);
    expect(await store.count()).toBe(0);
  });

  it('ignores other topics and unsigned messages', async () => {
    pubsub.deliver(TOPICS.announce, new Uint8Array([0xff]), bob.id);
    pubsub.dispatchEvent(
      new CustomEvent('message', { detail: { topic, type: 'unsigned', data: encode(await transfer()) } }),
    );
    await settle();
    expect(refused.get()).toEqual([]);
    expect(await store.count()).toBe(0);
  });

  it('neither publishes nor receives once stopped', async () => {
    gossip.stop();
    await book.publish('transfer', { to: bob.id, amount: '2' });
    pubsub.deliver(topic, encode(await transfer()), bob.id);
    pubsub.deliver(topic, new Uint8Array([0xff]), bob.id);
    await settle();
    expect(pubsub.published).toEqual([]);
    expect(refused.get()).toEqual([]);
    expect(await store.count()).toBe(1);
  });
});
