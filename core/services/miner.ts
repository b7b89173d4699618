/**
 * The miner: load a catalogue model in the inference engine and serve it to peers on `/webtensor/infer/1`,
 * one generation at a time through a bounded queue (then "busy"), streaming text pieces and signing the final
 * result. A caller that resets the stream cancels the work. Test networks may make it misbehave (faults).
 */
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { defaultGenerationPreference, findModel } from '../../shared/inference/catalogue.ts';
import type { Generation, InferenceEngine, Loaded } from '../../shared/inference/engine.ts';
import {
  generateParamsSchema,
  modelHash,
  outputHash,
  paramsHash,
  signResult,
  type GenerateParams,
  type GenerateResult,
} from '../../shared/inference/protocol.ts';
import { InferenceQueue } from '../../shared/inference/queue.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import { NodeError } from '../../shared/errors.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import type { NodeConfig } from '../config.ts';
import { Store } from '../store.ts';
import type { RpcRouter } from './rpc.ts';

/** Requests a miner holds at once (one running, the rest waiting) before it answers "busy". */
export const MINER_QUEUE_CAPACITY = 4;

export interface MinerState {
  model: string | null;
  device: 'wasm' | 'webgpu' | null;
  /** Why that device: shown to the user. */
  deviceReason: string | null;
  phase: 'idle' | 'downloading' | 'verifying' | 'loading' | 'ready' | 'error';
  /** Bytes verified or loaded so far, of total, in the current phase. */
  progress: { loaded: number; total: number };
  ready: boolean;
  served: number;
  tokensServed: number;
  /** Tokens per second over the last request served. */
  tokensPerSecond: number | null;
  /** Requests waiting or running. */
  queueDepth: number;
  /** Requests refused because the queue was full. */
  busyRefusals: number;
  /** The last request this miner worked on: how many tokens it generated and why it ended. */
  lastRequest: { tokens: number; finish: GenerateResult['finish'] } | null;
  lastError: string | null;
}

/** A node that serves no model yet. */
export const idleMiner: MinerState = {
  model: null,
  device: null,
  deviceReason: null,
  phase: 'idle',
  progress: { loaded: 0, total: 0 },
  ready: false,
  served: 0,
  tokensServed: 0,
  tokensPerSecond: null,
  queueDepth: 0,
  busyRefusals: 0,
  lastRequest: null,
  lastError: null,
};

export interface MinerComponents {
  engine: InferenceEngine;
  rpc: RpcRouter;
  key: PrivateKey;
  /** Models this machine has, for the default choice. */
  availableModels(): Promise<string[]>;
  /** Whether `peer` is a registered validator (only the `cheat-users` fault asks: it is honest with them alone). */
  isValidator?(peer: string): boolean;
}

export interface MinerInit {
  /** Test networks only (the caller checks): misbehave on purpose. */
  fault: NodeConfig['fault'];
  hub: string;
}

/** Frames of streamed text a miner sends at most per this many ms (the first piece goes at once). */
export const PIECE_INTERVAL_MS = 10;

/**
 * Streamed text to frames: the first piece at once (time to first token), then what came in the meantime at
 * most once per PIECE_INTERVAL_MS, and the rest before the result. One frame per piece made a remote
 * generation 1.5-2x slower than a local one: every frame is sent in the middle of generating.
 */
export class Pieces {
  private buffer = '';
  private timer: ReturnType<typeof setTimeout> | null = null;
  private last = -Infinity;
  private sending: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly send: (text: string) => Promise<unknown>,
    private readonly intervalMs = PIECE_INTERVAL_MS,
  ) {}

  push(text: string): void {
    this.buffer += text;
    if (this.timer) return;
    const wait = this.last + this.intervalMs - performance.now();
    if (wait <= 0) this.flush();
    else
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush();
      }, wait);
  }

  /** Send what is held, and resolve once every frame went out. */
  async end(): Promise<void> {
    this.stop();
    this.flush();
    await this.sending;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private flush(): void {
    if (!this.buffer) return;
    const text = this.buffer;
    this.buffer = '';
    this.last = performance.now();
    const previous = this.sending;
    this.sending = previous.then(() => this.send(text));
  }
}

export class Miner {
  readonly state = new Store<MinerState>(idleMiner);
  private servingModel: string | null = null;
  private servingHash = '';
  private readonly self: string;
  private readonly queue = new InferenceQueue(MINER_QUEUE_CAPACITY, (queueDepth) => this.state.update({ queueDepth }));

  constructor(
    private readonly components: MinerComponents,
    private readonly init: MinerInit,
  ) {
    this.self = peerIdFromPrivateKey(components.key).toString();
  }

  async start(): Promise<void> {
    await this.components.rpc.handle(
      PROTOCOLS.infer,
      {
        'infer.generate': {
          check: (p) => {
            const r = generateParamsSchema.safeParse(p);
            return r.success ? null : `${r.error.issues[0]!.path.join('.') || 'params'}: ${r.error.issues[0]!.message}`;
          },
          run: async (p, ctx) => {
            const params = generateParamsSchema.parse(p);
            if (params.model !== this.servingModel)
              throw new RpcError(
                'unsupported-model',
                `this miner serves ${this.servingModel ?? 'no model yet'}, not ${params.model}`,
              );
            // A piece that cannot be sent means the caller left; the signal cancels the work.
            const pieces = new Pieces((text) => ctx.emit({ text }).catch(() => {}));
            try {
              const result = await this.serve(params, ctx.signal, (text) => pieces.push(text), ctx.requestId, ctx.peer);
              await pieces.end(); // every piece goes before the result
              return result as Json;
            } finally {
              pieces.stop();
            }
          },
        },
      },
      {
        maxInboundStreams: 16,
        onRefused: (_peer, code) => {
          if (code === 'busy') this.state.update({ busyRefusals: this.state.get().busyRefusals + 1 });
          return code !== 'busy' && code !== 'cancelled';
        },
      },
    );
  }

  /** The model being served, or null. */
  get model(): string | null {
    return this.servingModel;
  }

  /** The best model this machine has: stories260K when present, else the one every install generates. */
  async defaultModel(): Promise<string> {
    const models: string[] = await this.components.availableModels().catch(() => []);
    return defaultGenerationPreference.find((id) => models.includes(id)) ?? 'webtensor/tiny-llama';
  }

  /** Verify and load a catalogue model, then serve it. */
  async serveModel(modelId: string | null, device: NodeConfig['device']): Promise<Loaded> {
    const id = modelId ?? (await this.defaultModel());
    const entry = findModel(id);
    this.servingModel = null;
    this.state.update({ model: id, phase: 'verifying', ready: false, lastError: null });
    try {
      if (!entry || entry.task !== 'text-generation')
        throw new NodeError('bad-model', `"${id}" is not a text-generation model in the catalogue.`);
      const phases = { download: 'downloading', verify: 'verifying', load: 'loading' } as const;
      const loaded = await this.components.engine.load(
        this.init.fault === 'other-model' ? await this.otherModel(id) : id,
        (p) => this.state.update({ phase: phases[p.phase], progress: { loaded: p.loaded, total: p.total } }),
        device,
        this.init.hub,
      );
      this.servingHash = await modelHash(entry);
      this.servingModel = id;
      this.state.update({ phase: 'ready', ready: true, device: loaded.device, deviceReason: loaded.reason });
      return loaded;
    } catch (err) {
      this.state.update({ phase: 'error', lastError: (err as Error).message });
      throw err;
    }
  }

  /** The `other-model` fault: another model this machine has, served under `id`'s name and hash. */
  private async otherModel(id: string): Promise<string> {
    const models: string[] = await this.components.availableModels().catch(() => []);
    const other = models.find((m) => m !== id && findModel(m)?.task === 'text-generation');
    if (!other)
      throw new NodeError('bad-model', `fault=other-model needs a second model besides ${id} on this machine.`);
    return other;
  }

  /** How many tokens `prompt` takes on this node's model, and the model's context (no queue: the tokenizer only). */
  countHere(prompt: string) {
    return this.components.engine.countTokens(prompt);
  }

  /** How this node's model sees `tokenIds` after `prompt` (an audit's stage 2), queued with the requests it serves. */
  async scoreHere(prompt: string, tokenIds: number[], signal?: AbortSignal) {
    const { value } = await this.queue.run(signal ?? new AbortController().signal, () =>
      this.components.engine.score(prompt, tokenIds),
    );
    return value;
  }

  /** Generate on this node's own engine, queued with the requests it serves (validators check against it). */
  async generateHere(params: GenerateParams, onText?: (text: string) => unknown, signal?: AbortSignal) {
    const { value } = await this.queue.run(signal ?? new AbortController().signal, () =>
      this.components.engine.generate(
        { prompt: params.prompt, maxNewTokens: params.maxNewTokens, sampling: params.sampling, stop: params.stop },
        onText,
      ),
    );
    return value;
  }

  /**
   * A signed answer to `params` under `requestId`, made here exactly as one served to a peer (the same queue,
   * faults, signing and counters): a batch job's line, whose request id is `<job id>:<line index>`.
   */
  async answer(params: GenerateParams, requestId: string, signal?: AbortSignal): Promise<GenerateResult> {
    if (params.model !== this.servingModel)
      throw new RpcError(
        'unsupported-model',
        `this miner serves ${this.servingModel ?? 'no model yet'}, not ${params.model}`,
      );
    // No peer asked: to the `cheat-users` fault a job's client is a user like any other.
    return this.serve(params, signal ?? new AbortController().signal, () => {}, requestId, this.self);
  }

  private async serve(
    params: GenerateParams,
    signal: AbortSignal,
    onText: (text: string) => unknown,
    requestId: string,
    peer: string,
  ): Promise<GenerateResult> {
    let fault = this.init.fault;
    // Honest with validators, cheap with everyone else: only audits of users' answers can catch it.
    if (fault === 'cheat-users') fault = this.components.isValidator?.(peer) ? null : 'random';
    if (fault === 'drop')
      await new Promise((_, reject) =>
        signal.addEventListener('abort', () => reject(new RpcError('cancelled', 'dropped'))),
      );
    if (fault === 'slow') await new Promise((r) => setTimeout(r, 10_000));
    // Truncating: half the work, sold as a finished answer (see below).
    const asked = fault === 'truncate' ? { ...params, maxNewTokens: Math.ceil(params.maxNewTokens / 2) } : params;
    const { value: out, queuedMs } = await this.queue.run(signal, () =>
      fault === 'random' ? Promise.resolve(madeUp(params)) : this.generateCancellable(asked, signal, onText),
    );
    const m = this.state.get();
    this.state.update({
      served: m.served + (out.finish === 'cancelled' ? 0 : 1),
      tokensServed: m.tokensServed + out.tokenIds.length,
      tokensPerSecond: out.ms > 0 ? (out.tokenIds.length * 1000) / out.ms : null,
      lastRequest: { tokens: out.tokenIds.length, finish: out.finish },
    });
    if (out.finish === 'cancelled') throw new RpcError('cancelled', 'the caller cancelled the request');
    // A miner that makes things up: other token ids, consistently signed and hashed, so only a check catches it.
    if (fault === 'wrong-output') out.tokenIds = out.tokenIds.map((t) => (t * 7 + 3) % 300);
    if (fault === 'truncate' && out.finish === 'length' && params.maxNewTokens > 1) out.finish = 'eos';
    return signResult(this.components.key, {
      requestId,
      miner: this.self,
      model: params.model,
      paramsHash: await paramsHash(params),
      modelHash: this.servingHash,
      text: out.text,
      tokenIds: out.tokenIds,
      candidates: out.steps.map((step) => step.top),
      outputHash: await outputHash(out.tokenIds),
      promptTokens: out.promptTokens,
      finish: out.finish,
      queueMs: Math.round(queuedMs),
      inferMs: Math.round(out.ms),
    });
  }

  private async generateCancellable(
    params: GenerateParams,
    signal: AbortSignal,
    onText: (text: string) => unknown,
  ): Promise<Generation> {
    const { engine } = this.components;
    const onAbort = () => void engine.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await engine.generate(
        { prompt: params.prompt, maxNewTokens: params.maxNewTokens, sampling: params.sampling, stop: params.stop },
        onText,
      );
    } catch (err) {
      this.state.update({ lastError: (err as Error).message });
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}

/**
 * The `random` fault: an answer made up without running the model. Token ids in a range every bundled model
 * has, each listed as its own only candidate (certain), so the answer is consistent (stage 1 passes) and only a
 * validator's own pass (stage 2) can tell.
 */
function madeUp(params: GenerateParams): Generation {
  const tokenIds = Array.from({ length: params.maxNewTokens }, () => 3 + Math.floor(Math.random() * 250));
  return {
    text: tokenIds.map((t) => String.fromCharCode(97 + (t % 26))).join(''),
    tokenIds,
    steps: tokenIds.map((token) => ({ token, top: [[token, 0]] })),
    promptTokens: 0,
    ms: 0,
    finish: 'length',
  };
}
