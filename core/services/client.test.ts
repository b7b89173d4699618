/**
 * The client: which miners `ask` tries, in what order, and how it falls back. Requests are signed by the real RPC
 * router; the transport is a fake that answers per peer with results signed by the miners' real keys.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NodeError } from '../../shared/errors.ts';
import {
  outputHash,
  paramsHash,
  signResult,
  type GenerateParams,
  type GenerateResult,
} from '../../shared/inference/protocol.ts';
import { MODEL_HASHES } from '../../shared/ledger/profiles.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import { RpcError, type RpcRequest } from '../../shared/p2p/messages.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import { verifyRequest } from '../../shared/p2p/signing.ts';
import { Store } from '../store.ts';
import {
  closedEpoch,
  FakePeerTable,
  FakeRpcRouter,
  settle,
  snapshotWith,
  subnetWith,
  testNetwork,
  uidSlot,
  uidSummary,
} from '../testing/fakes.ts';
import { Client, rankMiners, type AskProgress } from './client.ts';

const { network, clock } = testNetwork();
const subnet = network.subnets[0]!;

interface Peer {
  key: PrivateKey;
  id: string;
}
const peer = async (): Promise<Peer> => {
  const key = await generateKeyPair('Ed25519');
  return { key, id: peerIdFromPrivateKey(key).toString() };
};

/** What a miner `key` signs for `request`: "Once upon" as three tokens. */
async function answer(miner: Peer, request: RpcRequest, signer: Peer = miner): Promise<GenerateResult> {
  const tokenIds = [5, 17, 2];
  return signResult(signer.key, {
    requestId: request.id,
    miner: miner.id,
    model: subnet.model,
    paramsHash: await paramsHash(request.params as GenerateParams),
    modelHash: MODEL_HASHES['webtensor/tiny-llama'],
    text: 'Once upon',
    tokenIds,
    candidates: tokenIds.map((t) => [[t, 0]] as [number, number][]),
    outputHash: await outputHash(tokenIds),
    promptTokens: 2,
    finish: 'length',
    queueMs: 0,
    inferMs: 5,
  });
}

describe('rankMiners', () => {
  let m: Peer[];
  let validator: Peer;
  beforeAll(async () => {
    m = await Promise.all([peer(), peer(), peer(), peer(), peer()]);
    validator = await peer();
  });

  it('orders the reachable miners by last-epoch incentive, new UIDs last, lower UID first on ties', () => {
    const snapshot = snapshotWith({
      subnets: [
        subnetWith(1, [
          uidSlot(m[0]!.id, 'miner'),
          uidSlot(validator.id, 'validator'),
          uidSlot(m[1]!.id, 'miner'),
          uidSlot(m[2]!.id, 'miner'), // registered since the last epoch
          uidSlot(m[3]!.id, 'miner'),
        ]),
      ],
      epochs: [
        // An older epoch in which the order was the other way round.
        closedEpoch({ epoch: 3, uids: [uidSummary({ uid: 0, hotkey: m[0]!.id, incentive: 60000 })] }),
        closedEpoch({
          epoch: 4,
          uids: [
            uidSummary({ uid: 0, hotkey: m[0]!.id, incentive: 100 }),
            uidSummary({ uid: 1, hotkey: validator.id, role: 'validator', incentive: 0 }),
            uidSummary({ uid: 2, hotkey: m[1]!.id, incentive: 500 }),
          ],
        }),
        // Another subnet's epoch says nothing about this one.
        closedEpoch({ netuid: 2, epoch: 5, uids: [uidSummary({ uid: 0, hotkey: m[3]!.id, incentive: 65535 })] }),
      ],
    });
    const reachable = new Set([...m.map((p) => p.id), validator.id]);
    expect(rankMiners(snapshot, 1, reachable)).toEqual([
      { uid: 2, hotkey: m[1]!.id, incentive: 500 },
      { uid: 0, hotkey: m[0]!.id, incentive: 100 },
      { uid: 3, hotkey: m[2]!.id, incentive: -1 },
      { uid: 4, hotkey: m[3]!.id, incentive: -1 },
    ]);
  });

  it('leaves out miners this node does not reach and UIDs that are not miners', () => {
    const snapshot = snapshotWith({
      subnets: [
        subnetWith(1, [uidSlot(m[0]!.id, 'miner'), uidSlot(validator.id, 'validator'), uidSlot(m[1]!.id, 'miner')]),
      ],
    });
    expect(rankMiners(snapshot, 1, new Set([m[1]!.id, validator.id]))).toEqual([
      { uid: 2, hotkey: m[1]!.id, incentive: -1 },
    ]);
  });

  it('treats a UID whose hotkey changed since the last epoch as new', () => {
    const snapshot = snapshotWith({
      subnets: [subnetWith(1, [uidSlot(m[4]!.id, 'miner'), uidSlot(m[1]!.id, 'miner')])],
      epochs: [
        closedEpoch({
          epoch: 4,
          uids: [uidSummary({ uid: 0, hotkey: m[0]!.id, incentive: 900 }), uidSummary({ uid: 1, hotkey: m[1]!.id })],
        }),
      ],
    });
    expect(rankMiners(snapshot, 1, new Set([m[4]!.id, m[1]!.id])).map((c) => [c.uid, c.incentive])).toEqual([
      [1, 0],
      [0, -1],
    ]);
  });

  it('finds no miners without a snapshot or on a subnet it does not know', () => {
    expect(rankMiners(null, 1, new Set([m[0]!.id]))).toEqual([]);
    const snapshot = snapshotWith({ subnets: [subnetWith(1, [uidSlot(m[0]!.id, 'miner')])] });
    expect(rankMiners(snapshot, 2, new Set([m[0]!.id]))).toEqual([]);
  });
});

describe('Client', () => {
  let me: Peer;
  let best: Peer;
  let second: Peer;
  let third: Peer;
  let rpc: FakeRpcRouter;
  let peers: FakePeerTable;
  let snapshot: Store<LedgerSnapshot | null>;
  let client: Client;
  let asked: { peer: string; request: RpcRequest; protocol: string }[];

  beforeEach(async () => {
    [me, best, second, third] = await Promise.all([peer(), peer(), peer(), peer()]);
    rpc = new FakeRpcRouter(me.key, clock);
    asked = [];
    peers = new FakePeerTable([best.id, second.id, third.id]);
    snapshot = new Store<LedgerSnapshot | null>(fullSnapshot());
    client = new Client({ rpc, peers, snapshot });
  });

  /** Subnet 1 with three miners, `best` having had the highest incentive in the last epoch. */
  function fullSnapshot(): LedgerSnapshot {
    return snapshotWith({
      subnets: [subnetWith(1, [uidSlot(third.id, 'miner'), uidSlot(second.id, 'miner'), uidSlot(best.id, 'miner')])],
      epochs: [
        closedEpoch({
          epoch: 4,
          uids: [
            uidSummary({ uid: 0, hotkey: third.id, incentive: 1 }),
            uidSummary({ uid: 1, hotkey: second.id, incentive: 2 }),
            uidSummary({ uid: 2, hotkey: best.id, incentive: 3 }),
          ],
        }),
      ],
    });
  }

  /** Route each asked peer to `byPeer`; a peer not listed is unreachable. */
  function route(byPeer: Record<string, (request: RpcRequest, onChunk?: (c: Json) => void) => Promise<Json>>) {
    rpc.answer = async (peer, request, options) => {
      asked.push({ peer, request, protocol: options.protocol });
      const reply = byPeer[peer];
      if (!reply) throw new RpcError('timeout', `could not reach ${peer}`);
      return reply(request, options.onChunk);
    };
  }

  it('asks the best reachable miner with a request signed by this node, on the infer protocol', async () => {
    route({ [best.id]: async (request) => (await answer(best, request)) as Json });
    const result = await client.ask(subnet, 'Once', 3);

    expect(result.miner).toEqual({ uid: 2, hotkey: best.id, incentive: 3 });
    expect(result.text).toBe('Once upon');
    expect(result.tried).toEqual([]);
    expect(asked).toHaveLength(1);
    const [{ request, protocol }] = asked as [(typeof asked)[number]];
    expect(protocol).toBe(PROTOCOLS.infer);
    expect(request).toMatchObject({
      method: 'infer.generate',
      from: me.id,
      params: { model: subnet.model, prompt: 'Once', maxNewTokens: 3 },
    });
    expect(await verifyRequest(request)).toBe(true);
  });

  it('falls back to the next miner when one fails, reporting why', async () => {
    route({
      [best.id]: async () => {
        throw new RpcError('busy', 'this miner is busy');
      },
      [third.id]: async (request) => (await answer(third, request)) as Json,
    });
    const progress: AskProgress[] = [];
    const result = await client.ask(subnet, 'Once', 3, (p) => progress.push({ ...p, tried: [...p.tried] }));

    expect(asked.map((a) => a.peer)).toEqual([best.id, second.id, third.id]);
    expect(result.miner?.hotkey).toBe(third.id);
    expect(result.tried.map((t) => [t.miner.hotkey, t.reason])).toEqual([
      [best.id, 'busy'],
      [second.id, 'timeout'],
    ]);
    expect(progress.map((p) => p.miner?.hotkey)).toEqual([best.id, second.id, third.id]);
  });

  it('refuses an answer the miner did not sign, and tries the next miner', async () => {
    route({
      [best.id]: async (request) => (await answer(best, request, second)) as Json,
      [second.id]: async (request) => (await answer(second, request)) as Json,
    });
    const result = await client.ask(subnet, 'Once', 3);
    expect(result.miner?.hotkey).toBe(second.id);
    expect(result.tried.map((t) => t.reason)).toEqual(['bad-frame']);
  });

  it('refuses an answer to another request', async () => {
    route({ [best.id]: async (request) => (await answer(best, { ...request, id: 'some-other-request' })) as Json });
    const asking = client.infer(best.id, { model: subnet.model, prompt: 'Once', maxNewTokens: 3 });
    await expect(asking).rejects.toBeInstanceOf(RpcError);
    await expect(asking).rejects.toMatchObject({ code: 'bad-frame' });
  });

  it('refuses an answer signed for another model than the one asked for', async () => {
    route({ [best.id]: async (request) => (await answer(best, request)) as Json });
    const asking = client.infer(best.id, { model: 'karpathy/stories260K', prompt: 'Once', maxNewTokens: 3 });
    await expect(asking).rejects.toMatchObject({ code: 'bad-frame', message: expect.stringContaining('not the') });
    // A validator (or a forwarder for one) keeps it: signed over params naming another model, it is proof.
    const kept = await client.infer(
      best.id,
      { model: 'karpathy/stories260K', prompt: 'Once', maxNewTokens: 3 },
      { keepInconsistent: true },
    );
    expect(kept.model).toBe(subnet.model);
  });

  it('passes streamed text pieces on as they arrive', async () => {
    route({
      [best.id]: async (request, onChunk) => {
        onChunk?.({ text: 'Once' });
        onChunk?.({ not: 'text' });
        onChunk?.({ text: ' upon' });
        return (await answer(best, request)) as Json;
      },
    });
    const texts: string[] = [];
    await client.ask(subnet, 'Once', 3, (p) => texts.push(p.text));
    expect(texts).toEqual(['', 'Once', 'Once upon']);
  });

  it('throws NodeError("no-miner") naming every failure when no miner answers', async () => {
    route({});
    const asking = client.ask(subnet, 'Once', 3);
    await expect(asking).rejects.toBeInstanceOf(NodeError);
    await expect(asking).rejects.toMatchObject({ code: 'no-miner' });
    await expect(asking).rejects.toThrow('Every connected miner failed: timeout; timeout; timeout.');
  });

  it('with no miner connected, asks the registered miners by incentive, connecting on demand', async () => {
    peers.disconnectAll();
    route({ [second.id]: async (request) => (await answer(second, request)) as Json });
    const result = await client.ask(subnet, 'Once', 3);
    expect(result.miner?.hotkey).toBe(second.id);
    expect(asked.map((a) => a.peer)).toEqual([best.id, second.id]); // best is unreachable: the next is asked
  });

  it('asks connected miners before the others, whatever their incentive', async () => {
    peers.disconnectAll();
    peers.connect(third.id);
    expect(client.candidates(subnet).map((c) => c.hotkey)).toEqual([third.id, best.id, second.id]);
  });

  it('waits for the replay that shows the subnet’s miners', async () => {
    snapshot.set(snapshotWith({ subnets: [subnetWith(1, [])] }));
    route({ [best.id]: async (request) => (await answer(best, request)) as Json });
    const asking = client.ask(subnet, 'Once', 3, undefined, { waitForMinersMs: 30_000 });
    await settle();
    expect(asked).toEqual([]);
    snapshot.set(fullSnapshot());
    expect((await asking).miner?.hotkey).toBe(best.id);
  });

  it('throws NodeError("no-miner") without asking anyone when no miner is registered within the wait', async () => {
    snapshot.set(snapshotWith({ subnets: [subnetWith(1, [])] }));
    route({});
    const asking = client.ask(subnet, 'Once', 3, undefined, { waitForMinersMs: 5 });
    await expect(asking).rejects.toBeInstanceOf(NodeError);
    await expect(asking).rejects.toMatchObject({ code: 'no-miner' });
    await expect(client.ask(subnet, 'Once', 3, undefined, { waitForMinersMs: 0 })).rejects.toMatchObject({
      code: 'no-miner',
    });
    expect(asked).toEqual([]);
  });

  it('finds no miners on a node without a network', async () => {
    const offline = new Client({ rpc, peers, snapshot: null });
    expect(offline.candidates(subnet)).toEqual([]);
    // Nothing to wait for: it answers at once, whatever the wait allowed.
    await expect(offline.ask(subnet, 'Once', 3)).rejects.toMatchObject({ code: 'no-miner' });
  });
});
