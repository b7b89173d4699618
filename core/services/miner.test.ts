/**
 * The miner: the `infer.generate` handler it registers on the infer protocol, called as the RPC server would call
 * it once a request passed its checks. The inference engine is a fake; the key, the catalogue's model hash and the
 * signed result (checked with checkResult, as a client does) are real.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { beforeEach, describe, expect, it } from 'vitest';
import { NodeError } from '../../shared/errors.ts';
import type {
  GenerateOptions,
  Generation,
  InferenceEngine,
  LoadProgress,
  Loaded,
  Reference,
  Step,
} from '../../shared/inference/engine.ts';
import { checkResult, type GenerateParams, type GenerateResult } from '../../shared/inference/protocol.ts';
import { MODEL_HASHES } from '../../shared/ledger/profiles.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import type { HandlerContext, Json, Method } from '../../shared/p2p/rpc.ts';
import { deferred, FakeRpcRouter, settle, testNetwork, type Deferred } from '../testing/fakes.ts';
import { idleMiner, MINER_QUEUE_CAPACITY, Miner } from './miner.ts';

const MODEL = 'webtensor/tiny-llama';
const { clock } = testNetwork();

/** Steps a validator's stage 1 accepts for greedy `tokenIds`: each token the only candidate. */
const steps = (tokenIds: number[]): Step[] => tokenIds.map((token) => ({ token, top: [[token, 0]] }));

/** An engine that "generates" three tokens, or waits for the test when `held`. */
class FakeEngine implements InferenceEngine {
  readonly loads: { modelId: string; device: string | undefined }[] = [];
  readonly generations: GenerateOptions[] = [];
  cancels = 0;
  loadFailure: Error | null = null;
  /** While set, each generation waits for its own deferred (in order) instead of finishing at once. */
  held: Deferred<Generation>[] | null = null;

  async load(modelId: string, onProgress?: (p: LoadProgress) => void, device?: string): Promise<Loaded> {
    this.loads.push({ modelId, device });
    if (this.loadFailure) throw this.loadFailure;
    onProgress?.({ phase: 'verify', file: 'model.onnx', loaded: 10, total: 20 });
    onProgress?.({ phase: 'load', file: 'model.onnx', loaded: 20, total: 20 });
    return { modelId, ms: 1, device: 'wasm', reason: 'no WebGPU in a test' };
  }

  async generate(options: GenerateOptions, onText?: (text: string) => unknown): Promise<Generation> {
    this.generations.push(options);
    if (this.held) {
      const turn = deferred<Generation>();
      this.held.push(turn);
      return turn.promise;
    }
    onText?.('Once');
    onText?.(' upon');
    return {
      text: 'Once upon',
      tokenIds: [5, 17, 2],
      steps: steps([5, 17, 2]),
      promptTokens: 2,
      ms: 10,
      finish: 'length',
    };
  }

  async score(): Promise<Reference> {
    return [];
  }

  async countTokens(prompt: string) {
    return { tokens: prompt.length, context: 256 };
  }

  async cancel(): Promise<void> {
    this.cancels++;
    this.held
      ?.shift()
      ?.resolve({ text: 'On', tokenIds: [5], steps: steps([5]), promptTokens: 2, ms: 1, finish: 'cancelled' });
  }
}

let key: PrivateKey;
let self: string;
let engine: FakeEngine;
let rpc: FakeRpcRouter;
let available: () => Promise<string[]>;
let miner: Miner;
let requests = 0;

const params = (over: Partial<GenerateParams> = {}): GenerateParams => ({
  model: MODEL,
  prompt: 'Once',
  maxNewTokens: 3,
  ...over,
});

function handler(): Method {
  const served = rpc.served.get(PROTOCOLS.infer);
  if (!served) throw new Error('the miner serves nothing on the infer protocol');
  return served.methods['infer.generate']!;
}

/** Call the handler as the RPC server does for a request from `peer`; returns the result and the streamed chunks. */
function serve(p: GenerateParams, signal = new AbortController().signal) {
  const chunks: Json[] = [];
  const ctx: HandlerContext = {
    peer: 'caller',
    requestId: `req-${++requests}`,
    signal,
    emit: async (chunk) => void chunks.push(chunk),
  };
  const result = handler().run(p as Json, ctx) as Promise<GenerateResult>;
  return { result, chunks, requestId: ctx.requestId };
}

beforeEach(async () => {
  key = await generateKeyPair('Ed25519');
  self = peerIdFromPrivateKey(key).toString();
  engine = new FakeEngine();
  rpc = new FakeRpcRouter(key, clock);
  available = async () => [];
  miner = new Miner(
    { engine, rpc, key, availableModels: () => available() },
    { fault: null, hub: 'https://hub.test/' },
  );
  await miner.start();
});

describe('Miner: loading a model', () => {
  it('loads a catalogue model in the engine and reports it ready, with the device the engine chose', async () => {
    const phases: string[] = [];
    miner.state.subscribe((s) => phases.at(-1) !== s.phase && phases.push(s.phase));
    await miner.serveModel(MODEL, 'webgpu');

    expect(engine.loads).toEqual([{ modelId: MODEL, device: 'webgpu' }]);
    expect(miner.model).toBe(MODEL);
    expect(miner.state.get()).toMatchObject({
      model: MODEL,
      phase: 'ready',
      ready: true,
      device: 'wasm',
      deviceReason: 'no WebGPU in a test',
      progress: { loaded: 20, total: 20 },
      lastError: null,
    });
    expect(phases).toEqual(['verifying', 'loading', 'ready']);
  });

  it('refuses a model that is not a text-generation model of the catalogue, with NodeError("bad-model")', async () => {
    for (const id of ['someone/unknown-model', 'Xenova/all-MiniLM-L6-v2']) {
      const serving = miner.serveModel(id, 'auto');
      await expect(serving).rejects.toBeInstanceOf(NodeError);
      await expect(serving).rejects.toMatchObject({ code: 'bad-model' });
      expect(miner.state.get()).toMatchObject({ model: id, phase: 'error', ready: false });
      expect(miner.state.get().lastError).toContain(id);
    }
    expect(engine.loads).toEqual([]);
    expect(miner.model).toBeNull();
  });

  it('reports a failed load as phase "error" and serves nothing', async () => {
    await miner.serveModel(MODEL, 'auto');
    engine.loadFailure = new Error('the file does not match its catalogue hash');
    await expect(miner.serveModel(MODEL, 'auto')).rejects.toThrow('catalogue hash');
    expect(miner.state.get()).toMatchObject({ phase: 'error', ready: false, lastError: engine.loadFailure.message });
    await expect(serve(params()).result).rejects.toMatchObject({ code: 'unsupported-model' });
  });

  it('defaults to stories260K when this machine has it, else to the model every install generates', async () => {
    available = async () => ['karpathy/stories260K', MODEL];
    expect(await miner.defaultModel()).toBe('karpathy/stories260K');
    available = async () => [];
    expect(await miner.defaultModel()).toBe(MODEL);
    available = () => Promise.reject(new Error('cannot list'));
    expect(await miner.defaultModel()).toBe(MODEL);
    await miner.serveModel(null, 'auto');
    expect(engine.loads.at(-1)?.modelId).toBe(MODEL);
  });
});

describe('Miner: serving infer.generate', () => {
  beforeEach(async () => {
    await miner.serveModel(MODEL, 'auto');
  });

  it('registers the handler on the infer protocol with a bounded number of inbound streams', () => {
    expect([...rpc.served.keys()]).toEqual([PROTOCOLS.infer]);
    expect(rpc.served.get(PROTOCOLS.infer)!.options.maxInboundStreams).toBe(16);
  });

  it('checks the params before anything runs', () => {
    expect(handler().check!(params() as Json)).toBeNull();
    expect(handler().check!(params({ maxNewTokens: 0 }) as Json)).toMatch(/^maxNewTokens: /);
    expect(handler().check!(null)).toMatch(/^params: /);
  });

  it('streams the text and answers with a result signed by this miner that checkResult accepts', async () => {
    const { result, chunks, requestId } = serve(params());
    const signed = await result;

    expect(await checkResult(signed, { miner: self, requestId })).toBeNull();
    expect(signed).toMatchObject({
      requestId,
      miner: self,
      model: MODEL,
      modelHash: MODEL_HASHES[MODEL],
      text: 'Once upon',
      tokenIds: [5, 17, 2],
      promptTokens: 2,
      finish: 'length',
    });
    expect(chunks).toEqual([{ text: 'Once' }, { text: ' upon' }]);
    expect(engine.generations).toEqual([{ prompt: 'Once', maxNewTokens: 3, sampling: undefined, stop: undefined }]);
  });

  it('counts the requests and tokens it served', async () => {
    await serve(params()).result;
    await serve(params()).result;
    expect(miner.state.get()).toMatchObject({
      served: 2,
      tokensServed: 6,
      tokensPerSecond: 300,
      queueDepth: 0,
      lastRequest: { tokens: 3, finish: 'length' },
    });
  });

  it('refuses another model than the one it serves with RpcError("unsupported-model")', async () => {
    const asking = serve(params({ model: 'karpathy/stories260K' })).result;
    await expect(asking).rejects.toBeInstanceOf(RpcError);
    await expect(asking).rejects.toMatchObject({ code: 'unsupported-model' });
    expect(engine.generations).toEqual([]);
  });

  it('refuses every request before a model is served', async () => {
    const fresh = new Miner({ engine, rpc, key, availableModels: async () => [] }, { fault: null, hub: '' });
    await fresh.start();
    await expect(serve(params()).result).rejects.toThrow('this miner serves no model yet');
  });

  it('cancels the generation in the engine when the caller goes away, and counts it as not served', async () => {
    engine.held = [];
    const caller = new AbortController();
    const { result } = serve(params(), caller.signal);
    await settle();
    caller.abort();
    await expect(result).rejects.toMatchObject({ code: 'cancelled' });
    expect(engine.cancels).toBe(1);
    expect(miner.state.get()).toMatchObject({ served: 0, lastRequest: { tokens: 1, finish: 'cancelled' } });
  });

  it(`holds ${MINER_QUEUE_CAPACITY} requests (one running) and answers "busy" beyond that`, async () => {
    engine.held = [];
    const running = Array.from({ length: MINER_QUEUE_CAPACITY }, () => serve(params()).result);
    await settle();
    expect(miner.state.get().queueDepth).toBe(MINER_QUEUE_CAPACITY);
    expect(engine.generations).toHaveLength(1);

    await expect(serve(params()).result).rejects.toMatchObject({ code: 'busy' });

    // Let them all finish, one after the other.
    for (let k = 0; k < MINER_QUEUE_CAPACITY; k++) {
      await settle();
      engine.held
        .shift()!
        .resolve({ text: 'x', tokenIds: [1], steps: steps([1]), promptTokens: 1, ms: 1, finish: 'length' });
    }
    await Promise.all(running);
    expect(miner.state.get()).toMatchObject({ served: MINER_QUEUE_CAPACITY, queueDepth: 0 });
  });

  it('counts "busy" refusals itself and does not hold busy or cancelled against the caller', () => {
    const onRefused = rpc.served.get(PROTOCOLS.infer)!.options.onRefused!;
    expect(onRefused('caller', 'busy')).toBe(false);
    expect(onRefused('caller', 'cancelled')).toBe(false);
    expect(onRefused('caller', 'bad-signature')).toBe(true);
    expect(miner.state.get().busyRefusals).toBe(1);
  });

  it('generates locally in the same queue (what a validator checks against)', async () => {
    const out = await miner.generateHere(params());
    expect(out.tokenIds).toEqual([5, 17, 2]);
    // Local generations are not served to anyone.
    expect(miner.state.get()).toMatchObject({ served: idleMiner.served, queueDepth: 0 });
  });

  it("answers a batch job's line as it answers a peer: signed for the job's request id, counted as served", async () => {
    const requestId = `${'ab'.repeat(32)}:99999`;
    const signed = await miner.answer(params(), requestId);
    expect(await checkResult(signed, { miner: self, requestId, params: params() })).toBeNull();
    expect(miner.state.get()).toMatchObject({ served: 1, tokensServed: 3 });
    await expect(miner.answer(params({ model: 'karpathy/stories260K' }), requestId)).rejects.toMatchObject({
      code: 'unsupported-model',
    });
  });
});

describe('Miner: faults (test networks), each a consistent signed lie that only a check catches', () => {
  async function faulty(fault: 'random' | 'truncate' | 'cheat-users' | 'other-model', validators: string[] = []) {
    const m = new Miner(
      {
        engine,
        rpc: new FakeRpcRouter(key, clock),
        key,
        availableModels: async () => [MODEL, 'karpathy/stories260K'],
        isValidator: (peer) => validators.includes(peer),
      },
      { fault, hub: 'https://hub.test/' },
    );
    await m.start();
    return m;
  }
  const call = (m: Miner, p: GenerateParams, peer = 'caller') => {
    const methods = (m as unknown as { components: { rpc: FakeRpcRouter } }).components.rpc.served.get(
      PROTOCOLS.infer,
    )!;
    return methods.methods['infer.generate']!.run(p as Json, {
      peer,
      requestId: 'req-f',
      signal: new AbortController().signal,
      emit: async () => {},
    }) as Promise<GenerateResult>;
  };

  it('random: made-up tokens with made-up certain candidates, consistent (stage 1 passes), no generation run', async () => {
    const m = await faulty('random');
    await m.serveModel(MODEL, 'wasm');
    const r = await call(m, params({ maxNewTokens: 6 }));
    expect(await checkResult(r, { miner: self, requestId: 'req-f', params: params({ maxNewTokens: 6 }) })).toBeNull();
    expect(r.tokenIds).toHaveLength(6);
    expect(r.candidates).toEqual(r.tokenIds.map((t) => [[t, 0]]));
    expect(engine.generations).toHaveLength(0);
  });

  it('truncate: half the tokens asked for, sold as finished ("eos")', async () => {
    const m = await faulty('truncate');
    await m.serveModel(MODEL, 'wasm');
    const r = await call(m, params({ maxNewTokens: 6 }));
    expect(engine.generations.at(-1)!.maxNewTokens).toBe(3);
    expect(r.finish).toBe('eos');
    expect(await checkResult(r, { miner: self, requestId: 'req-f', params: params({ maxNewTokens: 6 }) })).toBeNull();
  });

  it('cheat-users: honest with registered validators, made up for everyone else', async () => {
    const m = await faulty('cheat-users', ['a-validator']);
    await m.serveModel(MODEL, 'wasm');
    expect((await call(m, params(), 'a-validator')).tokenIds).toEqual([5, 17, 2]);
    expect(engine.generations).toHaveLength(1);
    await call(m, params(), 'a-user');
    expect(engine.generations).toHaveLength(1);
  });

  it('other-model: loads another model this machine has, and serves it under the name and hash asked for', async () => {
    const m = await faulty('other-model');
    await m.serveModel(MODEL, 'wasm');
    expect(engine.loads.at(-1)!.modelId).toBe('karpathy/stories260K');
    expect(m.model).toBe(MODEL);
    expect((await call(m, params())).modelHash).toBe(MODEL_HASHES[MODEL]);
  });
});
