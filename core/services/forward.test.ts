/**
 * Forwarded challenges over real libp2p nodes (WebSockets on loopback), real RPC routers, real miners on the real
 * model (webtensor/tiny-llama on onnxruntime-web WASM) and a real validator loop. Attack-minded:
 *  - the miner sees the forwarder's key, never the validator's, and the validator gets the miner's signed answer;
 *  - a forwarder forwards only to registered miners, only for permitted validators, only well-formed params,
 *    within its rate and concurrency bounds, and keeps serving after refusing;
 *  - a forwarder that drops, alters or re-pairs an answer fails alone: the miner is asked directly and its score
 *    is what its own answers earn;
 *  - a miner honest with validators' keys only (`cheat-users`) passes direct challenges and is caught by forwarded
 *    ones.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { outputHash, type GenerateParams, type GenerateResult } from '../../shared/inference/protocol.ts';
import type { SubnetConfig } from '../../shared/ledger/config.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { testProfile } from '../../shared/ledger/profiles.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import type { Json, Method } from '../../shared/p2p/rpc.ts';
import type { NodeConfig } from '../config.ts';
import { NodeInferenceEngine } from '../nodejs/inference.ts';
import { createNodeLibp2p } from '../nodejs/libp2p.ts';
import type { Libp2pNode } from '../platform.ts';
import { Store, waitFor } from '../store.ts';
import { FakePeerTable, snapshotWith, subnetWith, uidSlot } from '../testing/fakes.ts';
import { Client } from './client.ts';
import { FORWARD_METHOD, Forwarder, type ForwarderInit } from './forward.ts';
import { Miner } from './miner.ts';
import { RpcRouter, type HandleOptions } from './rpc.ts';
import { Validator } from './validator.ts';

const subnet: SubnetConfig = testProfile(0).subnets[0]!;
const params: GenerateParams = { model: subnet.model, prompt: 'Once upon a time', maxNewTokens: 6 };
const minerEngine = new NodeInferenceEngine();
const validatorEngine = new NodeInferenceEngine();

beforeAll(async () => {
  await Promise.all([minerEngine.load(subnet.model), validatorEngine.load(subnet.model)]);
}, 60_000);

/** An RPC router that remembers which peer every request it served came from, and the prompt (what a miner sees). */
class SeeingRouter extends RpcRouter {
  readonly seen: string[] = [];
  readonly prompts: { peer: string; prompt: string }[] = [];

  override handle(protocol: string, methods: Record<string, Method>, options?: HandleOptions): Promise<void> {
    const see = (p: Json, peer: string) => {
      this.seen.push(peer);
      this.prompts.push({ peer, prompt: String((p as { prompt?: unknown } | null)?.prompt) });
    };
    const seeing = Object.fromEntries(
      Object.entries(methods).map(([name, m]) => [
        name,
        { ...m, run: (p: Json, ctx: Parameters<Method['run']>[1]) => (see(p, ctx.peer), m.run(p, ctx)) },
      ]),
    );
    return super.handle(protocol, seeing, options);
  }
}

interface TestNode {
  key: PrivateKey;
  id: string;
  libp2p: Libp2pNode;
  rpc: SeeingRouter;
  client: Client;
  forwarder: Forwarder;
}

const started: { stop(): unknown }[] = [];
afterEach(async () => {
  for (const s of started.splice(0).reverse()) await s.stop();
});

/** The ledger view every node of a test shares: a subnet with these miners and validators (permitted or not). */
const snapshot = new Store<LedgerSnapshot | null>(null);
function register(miners: string[], validators: { id: string; permit: boolean }[]) {
  const sub = subnetWith(subnet.netuid, [
    ...miners.map((m) => uidSlot(m, 'miner')),
    ...validators.map((v) => uidSlot(v.id, 'validator')),
  ]);
  sub.permits = [...miners.map(() => false), ...validators.map((v) => v.permit)];
  snapshot.set(snapshotWith({ subnets: [sub] }));
}

/**
 * A node as node.ts builds one, as far as forwarding goes: libp2p, RPC router, client and forwarder (serving,
 * unless `serve` is false: an evil forwarder serves the protocol its own way).
 */
async function node(init: ForwarderInit = {}, serve = true): Promise<TestNode> {
  const key = await generateKeyPair('Ed25519');
  const id = peerIdFromPrivateKey(key).toString();
  const libp2p = await createNodeLibp2p(key, { listen: { host: '127.0.0.1', port: 0 }, relays: 0 });
  started.push(libp2p);
  const rpc = new SeeingRouter({ libp2p, key, clock: { now: () => Date.now() } });
  const client = new Client({ rpc, peers: new FakePeerTable(), snapshot });
  const forwarder = new Forwarder({ rpc, client, snapshot, subnets: [subnet], self: id }, init);
  if (serve) await forwarder.start();
  return { key, id, libp2p, rpc, client, forwarder };
}

/** A node that also mines (the real Miner on the real model), honestly or with a test fault. */
async function minerNode(fault: NodeConfig['fault'] = null, validators: () => string[] = () => []) {
  const n = await node();
  const miner = new Miner(
    {
      engine: minerEngine,
      rpc: n.rpc,
      key: n.key,
      availableModels: async () => [subnet.model],
      isValidator: (peer) => validators().includes(peer),
    },
    { fault, hub: 'https://hub.invalid/' },
  );
  await miner.start();
  await miner.serveModel(subnet.model, 'wasm');
  return { ...n, miner };
}

/** Direct connections, as discovery would have made them. */
async function connect(a: TestNode, ...others: TestNode[]) {
  for (const b of others) await a.libp2p.dial(b.libp2p.getMultiaddrs()[0]!);
}

/** A validator loop on `v` (registered as `register` said), forwarding through whoever `peers()` names. */
function validatorOn(v: TestNode, peers: () => string[]): Validator {
  const validator = new Validator({
    consensus: {
      snapshot,
      uidOf: (_netuid, hotkey) => {
        const uid = snapshot.get()?.subnets[0]?.uids.findIndex((u) => u.hotkey === hotkey) ?? -1;
        return uid < 0 ? null : uid;
      },
      currentBlock: () => 0,
    },
    book: { publish: async () => ({}) as never, self: v.id },
    subnet,
    fault: null,
    infer: (peer, p, opts) => v.client.infer(peer, p, opts),
    forward: (forwarder, miner, p, opts) => v.forwarder.through(forwarder, miner, p, opts),
    connectedPeers: peers,
    scoreLocally: (prompt, tokenIds) => validatorEngine.score(prompt, tokenIds),
    countLocally: (prompt) => validatorEngine.countTokens(prompt),
  });
  started.push(validator);
  return validator;
}

const forwardCall = (from: TestNode, forwarder: TestNode, body: unknown, signal?: AbortSignal) =>
  from.rpc.call(forwarder.id, FORWARD_METHOD, body as Json, {
    protocol: PROTOCOLS.forward,
    timeoutMs: 20_000,
    ...(signal ? { signal } : {}),
  });

describe('forwarding', () => {
  it('sends the request from the forwarder’s key: the miner never sees the validator’s', async () => {
    const [v, f, m] = [await node(), await node(), await minerNode()];
    register([m.id], [{ id: v.id, permit: true }]);
    await connect(v, f);
    await connect(f, m);
    const answer = await v.forwarder.through(f.id, m.id, params, { timeoutMs: 20_000 });
    // The miner's own signed answer to exactly these params, checked by the validator as a direct one.
    expect(answer).toMatchObject({ miner: m.id, model: subnet.model, finish: expect.any(String) });
    expect(answer.tokenIds.length).toBeGreaterThan(0);
    expect(m.rpc.seen).toEqual([f.id]);
    expect(m.libp2p.getConnections(v.libp2p.peerId)).toHaveLength(0);
    expect(f.forwarder.state.get()).toEqual({ forwarded: 1, failed: 0, refused: 0 });
  }, 30_000);

  it('refuses non-miners, non-validators, bad params, too many and too fast, and keeps serving', async () => {
    const f = await node({ rate: { requests: 3, perSeconds: 60 }, maxForwards: 2, maxPerPeer: 1 });
    const [v, v2, v3, unpermitted, stranger] = [await node(), await node(), await node(), await node(), await node()];
    const [m, holder] = [await minerNode(), await minerNode('drop')];
    register(
      [m.id, holder.id],
      [v, v2, v3].map((n) => ({ id: n.id, permit: true })).concat({ id: unpermitted.id, permit: false }),
    );
    await connect(f, m, holder);
    for (const n of [v, v2, v3, unpermitted, stranger]) await connect(n, f);

    const refusals: [string, TestNode, unknown, string, RegExp][] = [
      ['a stranger asks', stranger, { miner: m.id, params }, 'bad-params', /permit/],
      ['a validator without a permit asks', unpermitted, { miner: m.id, params }, 'bad-params', /permit/],
      ['to a peer that is no miner', v, { miner: stranger.id, params }, 'bad-params', /not a registered miner/],
      ['to a validator', v, { miner: v2.id, params }, 'bad-params', /not a registered miner/],
      ['to the forwarder itself', v, { miner: f.id, params }, 'bad-params', /other peers/],
      [
        'for another model',
        v,
        { miner: m.id, params: { ...params, model: 'karpathy/stories260K' } },
        'bad-params',
        /not a registered miner/,
      ],
      [
        'params out of range',
        v,
        { miner: m.id, params: { ...params, maxNewTokens: 100_000 } },
        'bad-params',
        /maxNewTokens/,
      ],
      ['not a peer id', v, { miner: 'nobody', params }, 'bad-params', /miner/],
      ['a field more', v, { miner: m.id, params, challenge: true }, 'bad-params', /challenge|Unrecognized/i],
    ];
    for (const [what, from, body, code, message] of refusals)
      await expect(forwardCall(from, f, body), what).rejects.toMatchObject({
        code,
        message: expect.stringMatching(message),
      });
    expect(m.rpc.seen).toEqual([]);

    // Concurrency: one of v's at a time, two in all (the `drop` miner holds each until its asker gives up).
    const held = new AbortController();
    const first = forwardCall(v, f, { miner: holder.id, params }, held.signal).catch((e: RpcError) => e);
    await expect.poll(() => holder.rpc.seen.length).toBe(1);
    await expect(forwardCall(v, f, { miner: m.id, params })).rejects.toMatchObject({ code: 'busy' });
    const second = forwardCall(v2, f, { miner: holder.id, params }, held.signal).catch((e: RpcError) => e);
    await expect.poll(() => holder.rpc.seen.length).toBe(2);
    await expect(forwardCall(v3, f, { miner: m.id, params })).rejects.toMatchObject({ code: 'busy' });
    held.abort();
    expect(await first).toMatchObject({ code: 'cancelled' });
    expect(await second).toMatchObject({ code: 'cancelled' });

    // Rate: v has used 2 of its 3 (the held one and the busy one); the third goes through, the fourth is refused.
    await expect.poll(() => f.forwarder.state.get().failed, { timeout: 5000 }).toBe(2);
    const answer = (await forwardCall(v, f, { miner: m.id, params })) as GenerateResult;
    expect(answer.miner).toBe(m.id);
    await expect(forwardCall(v, f, { miner: m.id, params })).rejects.toMatchObject({ code: 'rate-limited' });
    // Others still get theirs, and every request the miners saw came from the forwarder.
    expect(((await forwardCall(v3, f, { miner: m.id, params })) as GenerateResult).miner).toBe(m.id);
    expect(new Set([...m.rpc.seen, ...holder.rpc.seen])).toEqual(new Set([f.id]));
    // Refusals of what the asker did wrong count against it; being busy does not.
    const counted = f.rpc.refusals.get();
    expect(counted[stranger.id]).toBe(1);
    expect(counted[unpermitted.id]).toBe(1);
    expect(counted[v3.id]).toBeUndefined();
    expect(f.forwarder.state.get()).toMatchObject({ forwarded: 2, failed: 2 });
  }, 60_000);

  it('refuses an answer a forwarder altered or re-paired: it fails, not the miner', async () => {
    const [v, m] = [await node(), await minerNode()];
    const [alter, repair] = [await node({}, false), await node({}, false)];
    register([m.id], [{ id: v.id, permit: true }]);
    await connect(v, alter, repair);
    // A forwarder that changes a token (and its hash), and one that asks the miner something else.
    await evilForwarder(alter, 'alter');
    await evilForwarder(repair, 'repair');
    await connect(alter, m);
    await connect(repair, m);
    await expect(v.forwarder.through(alter.id, m.id, params, { timeoutMs: 20_000 })).rejects.toMatchObject({
      code: 'bad-frame',
      message: expect.stringMatching(/signature does not verify/),
    });
    await expect(v.forwarder.through(repair.id, m.id, params, { timeoutMs: 20_000 })).rejects.toMatchObject({
      code: 'bad-frame',
      message: expect.stringMatching(/other params/),
    });
  }, 30_000);
});

/**
 * Serve `forward.generate` on `n` dishonestly: `alter` forwards and changes the first token (and the output hash
 * with it); `repair` asks the miner for one token fewer and hands that signed answer back; `drop` forwards and never
 * answers (the validator times out); `blame` asks nothing and says the miner was busy.
 */
async function evilForwarder(n: TestNode, how: 'alter' | 'repair' | 'drop' | 'blame') {
  await n.rpc.handle(PROTOCOLS.forward, {
    [FORWARD_METHOD]: {
      run: async (p, ctx) => {
        const { miner, params: asked } = p as { miner: string; params: GenerateParams };
        if (how === 'blame') throw new RpcError('busy', 'the miner did not answer: busy: all taken');
        const sent = how === 'repair' ? { ...asked, maxNewTokens: asked.maxNewTokens - 1 || 1 } : asked;
        const real = await n.client.infer(miner, sent, { keepInconsistent: true });
        if (how === 'drop')
          await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('gone'))));
        if (how === 'alter') {
          const tokenIds = [(real.tokenIds[0]! + 1) % 300, ...real.tokenIds.slice(1)];
          return { ...real, tokenIds, outputHash: await outputHash(tokenIds) } as Json;
        }
        return real as Json;
      },
    },
  });
}

describe('the validator with forwarders', () => {
  it('a forwarder that alters or drops the answer costs the miner nothing: it is asked anew, then directly', async () => {
    const [v, m, alter, drop] = [await node(), await minerNode(), await node({}, false), await node({}, false)];
    register([m.id], [{ id: v.id, permit: true }]);
    await evilForwarder(alter, 'alter');
    await evilForwarder(drop, 'drop');
    await connect(v, m, alter, drop);
    await connect(alter, m);
    await connect(drop, m);
    const validator = validatorOn(v, () => [alter.id, drop.id]);
    validator.start();
    // The first challenge goes through one forwarder, then (drawn anew) through the other; both fail, and are left
    // out for a while: it goes to the miner directly, and so do the next ones.
    const done = await waitFor(
      validator.state,
      (s) => s.forwarding.failed === 2 && s.challenges >= 3,
      AbortSignal.timeout(45_000),
    );
    validator.stop();
    expect(done.forwarding).toMatchObject({ forwarded: 0, failed: 2 });
    expect(done.forwarding.direct).toBe(done.challenges);
    const score = done.scores.find((s) => s.hotkey === m.id)!;
    // Every answer the miner gave was correct, and nothing the forwarders did counted against it.
    expect(score).toMatchObject({ wrong: 0, penaltyLeft: 0, forwarded: 0, forwardFailures: 2, last: 'correct' });
    expect(score.correct).toBe(score.challenges);
    expect(score.history.every((sample) => sample >= 0.5)).toBe(true);
    expect(score.score).toBeGreaterThan(0.5);
    // Drawn anew each time: what the forwarders sent never came again from the validator's key.
    const forwardedPrompts = new Set(m.rpc.prompts.filter((p) => p.peer !== v.id).map((p) => p.prompt));
    expect(forwardedPrompts.size).toBeGreaterThan(0);
    expect(m.rpc.prompts.filter((p) => p.peer === v.id && forwardedPrompts.has(p.prompt))).toEqual([]);
  }, 60_000);

  it('leaves a forwarder out for every miner when it failed itself, for that miner alone when it blames it', async () => {
    const [v, m1, m2, alter, blame] = [
      await node(),
      await minerNode(),
      await minerNode(),
      await node({}, false),
      await node({}, false),
    ];
    register([m1.id, m2.id], [{ id: v.id, permit: true }]);
    await evilForwarder(alter, 'alter');
    await evilForwarder(blame, 'blame');
    await connect(v, m1, m2, alter, blame);
    await connect(alter, m1, m2);
    const validator = validatorOn(v, () => [alter.id, blame.id]);
    validator.start();
    // The altered answer is the forwarder's fault: it is out for both miners. "The miner was busy" may be true: the
    // blamer is out for that miner only, and tried once for each (3 failures in all, however the draws fall).
    const done = await waitFor(validator.state, (s) => s.challenges >= 6, AbortSignal.timeout(45_000));
    validator.stop();
    expect(done.forwarding).toMatchObject({ forwarded: 0, failed: 3, direct: done.challenges });
    for (const m of [m1, m2])
      expect(done.scores.find((s) => s.hotkey === m.id)).toMatchObject({ wrong: 0, last: 'correct', penaltyLeft: 0 });
    const failures = done.scores.map((s) => s.forwardFailures);
    expect(failures.reduce((a, b) => a + b)).toBe(3);
  }, 60_000);

  it('catches a miner honest with validators only (cheat-users) once challenges are forwarded', async () => {
    const [v, f] = [await node(), await node()];
    const cheater = await minerNode('cheat-users', () => [v.id]);
    // No permit yet: forwarders would refuse the validator, so it does not ask them and challenges directly.
    register([cheater.id], [{ id: v.id, permit: false }]);
    await connect(v, f, cheater);
    await connect(f, cheater);
    const validator = validatorOn(v, () => [f.id]);
    validator.start();
    // Directly, the cheater answers the validator's key honestly: no challenge catches it.
    const direct = await waitFor(validator.state, (s) => (s.scores[0]?.audited ?? 0) >= 2, AbortSignal.timeout(60_000));
    expect(direct.scores[0]).toMatchObject({ hotkey: cheater.id, wrong: 0, correct: direct.scores[0]!.challenges });
    expect(direct.forwarding).toMatchObject({ forwarded: 0, failed: 0 });
    expect(new Set(cheater.rpc.seen)).toEqual(new Set([v.id]));
    expect(f.forwarder.state.get().refused).toBe(0);
    // With a permit, the same challenges reach it forwarded, from a client's key: it makes its answer up, and is
    // caught by the validator's own pass of the model.
    register([cheater.id], [{ id: v.id, permit: true }]);
    const caught = await waitFor(validator.state, (s) => (s.scores[0]?.wrong ?? 0) > 0, AbortSignal.timeout(60_000));
    validator.stop();
    const score = caught.scores[0]!;
    expect(score).toMatchObject({ score: 0, penaltyLeft: 20 });
    expect(score.forwarded).toBeGreaterThan(0);
    expect(score.lastProblem).toMatch(/^stage 2: /);
    expect(caught.forwarding.failed).toBe(0);
    expect(cheater.rpc.seen).toContain(f.id);
  }, 120_000);
});
