/**
 * Agreement: this node signs the roots of every closed epoch once, checks the roots others gossip (and blames
 * whoever forwards a bad one), counts the permitted validators' stake behind its own roots, and syncs with a stake
 * majority that signed other roots. Real keys and signatures; the pubsub, the snapshot and sync are fakes.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClosedEpoch } from '../../shared/ledger/replay.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { TOPICS } from '../../shared/names.ts';
import { decodeFrame, encodeFrame } from '../../shared/p2p/messages.ts';
import { fromBase64Url, toBase64Url } from '../../shared/p2p/signing.ts';
import { Store, waitFor } from '../store.ts';
import {
  closedEpoch,
  FakePubsub,
  fakeLibp2p,
  settle,
  snapshotWith,
  testNetwork,
  uidSummary,
} from '../testing/fakes.ts';
import { Agreement, rootsBytes, rootsSchema, type EpochAgreement, type SignedRoots } from './agreement.ts';

const { network } = testNetwork();
const topic = TOPICS.roots(network.networkId);
const OURS = { recordsRoot: 'a'.repeat(64), stateRoot: 'b'.repeat(64) };
const THEIRS = { recordsRoot: 'c'.repeat(64), stateRoot: 'd'.repeat(64) };

interface Peer {
  key: PrivateKey;
  id: string;
}
const peer = async (): Promise<Peer> => {
  const key = await generateKeyPair('Ed25519');
  return { key, id: peerIdFromPrivateKey(key).toString() };
};

let self: Peer;
let big: Peer;
let small: Peer;
let outsider: Peer;
let forwarder: Peer;
let pubsub: FakePubsub;
let snapshot: Store<LedgerSnapshot | null>;
let refused: Store<string[]>;
let synced: Store<string[]>;
let agreement: Agreement;

/** Roots of epoch `epoch` of subnet 1, signed for real by `signer`. */
async function signedRoots(
  signer: Peer,
  epoch: number,
  roots = OURS,
  over: Partial<Omit<SignedRoots, 'sig'>> = {},
): Promise<SignedRoots> {
  const body = { network: network.networkId, netuid: 1, epoch, ...roots, signer: signer.id, ...over };
  return { ...body, sig: toBase64Url(await signer.key.sign(rootsBytes(body))) };
}

/** Epoch `epoch` with this node (stake 100), `big` (300) and `small` (50) as permitted validators. */
const epochWithValidators = (epoch: number, roots = OURS): ClosedEpoch =>
  closedEpoch({
    epoch,
    ...roots,
    uids: [
      uidSummary({ uid: 0, hotkey: self.id, role: 'validator', stake: '100', validatorPermit: true }),
      uidSummary({ uid: 1, hotkey: big.id, role: 'validator', stake: '300', validatorPermit: true }),
      uidSummary({ uid: 2, hotkey: small.id, role: 'validator', stake: '50', validatorPermit: true }),
      uidSummary({ uid: 3, hotkey: outsider.id, role: 'validator', stake: '10000', validatorPermit: false }),
    ],
  });

const gossip = (roots: unknown, from: Peer = forwarder) => pubsub.deliver(topic, encodeFrame(roots), from.id);
const epochAgreement = (epoch: number) => (es: readonly EpochAgreement[]) => es.find((e) => e.epoch === epoch);
const until = <T>(store: Store<T>, test: (value: T) => unknown) =>
  waitFor(store, (v) => !!test(v), AbortSignal.timeout(2000));
const publishedRoots = () => pubsub.published.map((p) => decodeFrame(p.data, rootsSchema));

beforeEach(async () => {
  [self, big, small, outsider, forwarder] = await Promise.all([peer(), peer(), peer(), peer(), peer()]);
  pubsub = new FakePubsub();
  snapshot = new Store<LedgerSnapshot | null>(null);
  refused = new Store<string[]>([]);
  synced = new Store<string[]>([]);
  agreement = new Agreement({
    libp2p: fakeLibp2p(self.key, pubsub),
    key: self.key,
    network,
    snapshot,
    sync: { syncWith: async (peer) => (synced.set([...synced.get(), peer]), 0) },
    rpc: { countRefusal: (peer) => refused.set([...refused.get(), peer]) },
  });
  agreement.start();
});

afterEach(() => agreement.stop());

describe('Agreement: our roots', () => {
  it('subscribes to the network’s roots topic', () => {
    expect(pubsub.topics).toEqual([topic]);
  });

  it('signs and gossips the roots of every closed epoch, each once', async () => {
    snapshot.set(snapshotWith({ epochs: [epochWithValidators(0), epochWithValidators(1)] }));
    await until(agreement.epochs, (es) => es.length === 2);
    snapshot.set(snapshotWith({ epochs: [epochWithValidators(0), epochWithValidators(1), epochWithValidators(2)] }));
    await until(agreement.epochs, (es) => es.length === 3);

    expect(pubsub.published.every((p) => p.topic === topic)).toBe(true);
    const signed = publishedRoots();
    expect(signed.map((r) => r.epoch)).toEqual([0, 1, 2]);
    for (const r of signed) {
      expect(r).toMatchObject({ network: network.networkId, netuid: 1, signer: self.id, ...OURS });
      expect(await self.key.publicKey.verify(rootsBytes(r), fromBase64Url(r.sig))).toBe(true);
    }
  });

  it('signs an epoch again when a later replay changed its roots', async () => {
    snapshot.set(snapshotWith({ epochs: [epochWithValidators(0)] }));
    await until(agreement.epochs, (es) => es.length === 1);
    snapshot.set(snapshotWith({ epochs: [epochWithValidators(0, THEIRS)] }));
    await until(agreement.epochs, (es) => es[0]?.recordsRoot === THEIRS.recordsRoot);
    expect(publishedRoots().map((r) => r.recordsRoot)).toEqual([OURS.recordsRoot, THEIRS.recordsRoot]);
  });

  it('counts its own stake when it is a permitted validator, and the whole permitted stake', async () => {
    snapshot.set(snapshotWith({ epochs: [epochWithValidators(0)] }));
    const [e] = await until(agreement.epochs, (es) => es.length === 1);
    expect(e).toEqual({
      netuid: 1,
      epoch: 0,
      ...OURS,
      agreeingStake: '100',
      permittedStake: '450',
      disagreeing: 0,
    });
  });
});

describe('Agreement: roots from others', () => {
  beforeEach(async () => {
    snapshot.set(snapshotWith({ epochs: [epochWithValidators(0)] }));
    await until(agreement.epochs, (es) => es.length === 1);
  });

  it('adds the stake of permitted validators that signed the same roots, and only theirs', async () => {
    gossip(await signedRoots(big, 0));
    await until(agreement.epochs, (es) => epochAgreement(0)(es)?.agreeingStake === '400');
    gossip(await signedRoots(outsider, 0));
    gossip(await signedRoots(small, 0));
    const [e] = await until(agreement.epochs, (es) => epochAgreement(0)(es)?.agreeingStake === '450');
    expect(e).toMatchObject({ permittedStake: '450', disagreeing: 0 });
    expect(refused.get()).toEqual([]);
  });

  it('counts a signer once, however often its roots arrive', async () => {
    const roots = await signedRoots(big, 0);
    gossip(roots);
    gossip(roots, big);
    gossip(roots);
    await until(agreement.epochs, (es) => epochAgreement(0)(es)?.agreeingStake === '400');
    await settle();
    expect(agreement.epochs.get()[0]?.agreeingStake).toBe('400');
  });

  it('refuses roots with a forged signature and counts them against the peer that forwarded them', async () => {
    const genuine = await signedRoots(small, 0);
    // `big`'s name on roots `small` signed: the signature does not verify against big's key.
    gossip({ ...genuine, signer: big.id });
    await until(refused, (r) => r.length === 1);
    expect(refused.get()).toEqual([forwarder.id]);

    gossip(genuine);
    const [e] = await until(agreement.epochs, (es) => epochAgreement(0)(es)?.agreeingStake === '150');
    expect(e?.disagreeing).toBe(0);
    expect(refused.get()).toEqual([forwarder.id]);
  });

  it('refuses roots of another network, however well signed', async () => {
    gossip(await signedRoots(big, 0, OURS, { network: 'webtensor-main' }), big);
    await until(refused, (r) => r.length === 1);
    expect(refused.get()).toEqual([big.id]);
    expect(agreement.epochs.get()[0]?.agreeingStake).toBe('100');
  });

  it('refuses a frame that is not signed roots', async () => {
    pubsub.deliver(topic, new TextEncoder().encode('{"hello":"world"}'), forwarder.id);
    pubsub.deliver(topic, new Uint8Array([0xff, 0xfe]), forwarder.id);
    await until(refused, (r) => r.length === 2);
    expect(refused.get()).toEqual([forwarder.id, forwarder.id]);
  });

  it('ignores messages on other topics', async () => {
    pubsub.deliver(TOPICS.records(network.networkId), new Uint8Array([1]), forwarder.id);
    await settle();
    expect(refused.get()).toEqual([]);
  });

  it('keeps roots heard before its own replay closed that epoch, and counts them once it has', async () => {
    gossip(await signedRoots(big, 1));
    await settle();
    await settle();
    snapshot.set(snapshotWith({ epochs: [epochWithValidators(0), epochWithValidators(1)] }));
    const es = await until(agreement.epochs, (es) => es.length === 2);
    expect(epochAgreement(1)(es)?.agreeingStake).toBe('400');
  });
});

describe('Agreement: outvoted', () => {
  beforeEach(async () => {
    snapshot.set(snapshotWith({ epochs: [epochWithValidators(0)] }));
    await until(agreement.epochs, (es) => es.length === 1);
  });

  it('syncs with the signers of other roots that a stake majority signed', async () => {
    gossip(await signedRoots(big, 0, THEIRS));
    await until(synced, (s) => s.length > 0);
    expect(synced.get()).toEqual([big.id]);
    expect(agreement.epochs.get()[0]).toMatchObject({ agreeingStake: '100', disagreeing: 1 });
  });

  it('does not sync with a disagreeing minority, nor with signers that hold no permit', async () => {
    gossip(await signedRoots(small, 0, THEIRS));
    gossip(await signedRoots(outsider, 0, THEIRS));
    await until(agreement.epochs, (es) => es[0]?.disagreeing === 2);
    await settle();
    expect(synced.get()).toEqual([]);
  });

  it('stops listening once stopped', async () => {
    agreement.stop();
    gossip(await signedRoots(big, 0, THEIRS));
    gossip({ not: 'roots' });
    await settle();
    await settle();
    expect(synced.get()).toEqual([]);
    expect(refused.get()).toEqual([]);
    expect(agreement.epochs.get()[0]?.disagreeing).toBe(0);
  });
});
