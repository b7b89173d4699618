/**
 * Model inference in a Web Worker, exposed over Comlink. Files come from our own server (/models/<version>/…)
 * and are checked against the catalogue's sha256 before use; ORT's wasm is ours too, never a CDN. Anything a
 * validator may check runs on the pinned path: WASM backend, fp32, batch 1 (../shared/notes/INFERENCE.md).
 */
import { expose } from 'comlink';
import { env, pipeline, type FeatureExtractionPipeline, type TextGenerationPipeline } from '@huggingface/transformers';
import ortWasm from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';
import ortMjs from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.mjs?url';
import { findModel, modelBasePath, type HubModelEntry, type ServedModelEntry } from '../shared/inference/catalogue.ts';
import { checkHubFile, hubTreeSchema, type HubTree } from '../shared/inference/hub.ts';
import { checkModelFile, ModelFileError } from '../shared/inference/verify.ts';
import { InferenceError } from '../shared/errors.ts';
import type { DeviceChoice, InferenceEngine, LoadProgress } from '../shared/inference/engine.ts';
import { Generator } from '../shared/inference/generate.ts';
import { chooseDevice } from './device.ts';

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.backends.onnx.wasm!.wasmPaths = { wasm: ortWasm, mjs: ortMjs };

/** The engine of shared/inference/engine.ts (Comlink makes every call async), plus embeddings. */
export interface InferenceWorkerApi extends Omit<InferenceEngine, 'cancel'> {
  /** Stop the running generation after its current token; it resolves with finish "cancelled". */
  cancel(): void;
  /** Mean-pooled, L2-normalised embedding of `text` with the loaded feature-extraction model. */
  embed(text: string): Promise<Float32Array>;
}

/** Fetch every file of the model and check it against the catalogue; a mismatch names the file. */
async function verify(entry: ServedModelEntry, base: string, onProgress?: (p: LoadProgress) => void) {
  const total = entry.files.reduce((s, f) => s + f.size, 0);
  let loaded = 0;
  for (const file of entry.files) {
    const res = await fetch(`${base}${entry.id}/${file.path}`);
    if (!res.ok)
      throw new InferenceError(
        'model-file',
        `The server has no ${file.path} for ${entry.id} (HTTP ${res.status}). ${
          entry.source === 'generated'
            ? 'Run `npm install` again: it generates this model.'
            : 'Put ../shared/models beside the repository, or pick webtensor/tiny-llama.'
        }`,
      );
    await checkModelFile(entry, file, await res.arrayBuffer());
    loaded += file.size;
    onProgress?.({ phase: 'verify', file: file.path, loaded, total });
  }
}

const defaultFetch = env.fetch;

/**
 * Prepare a hub model: read the hub's file listing (with its published hashes), then let transformers.js fetch
 * what it needs through a fetch that downloads each hub file with progress and refuses it unless it matches.
 * Checked responses are what transformers.js then caches.
 */
async function prepareHub(entry: HubModelEntry, host: string, onProgress?: (p: LoadProgress) => void) {
  const listing = `${host}api/models/${entry.id}/tree/${encodeURIComponent(entry.revision)}?recursive=true`;
  let tree: HubTree;
  try {
    const res = await defaultFetch(listing);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    tree = hubTreeSchema.parse(await res.json());
  } catch (err) {
    throw new InferenceError(
      'hub-unreachable',
      `The Hugging Face hub is not reachable from this browser (${(err as Error).message}), so ${entry.id} cannot be downloaded. Pick a model this server provides.`,
      { cause: err },
    );
  }
  const prefix = `${host}${entry.id}/resolve/${encodeURIComponent(entry.revision)}/`;
  env.allowLocalModels = false; // straight to the hub, not a 404 from our own server first
  env.allowRemoteModels = true;
  env.remoteHost = host;
  env.fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input instanceof Request ? input.url : input);
    if (!url.startsWith(prefix)) return defaultFetch(url, init);
    const path = decodeURIComponent(url.slice(prefix.length));
    const res = await defaultFetch(url, init);
    if (!res.ok || !res.body) return res; // transformers.js reports a missing optional file itself
    const total = Number(res.headers.get('content-length') ?? 0);
    const chunks: Uint8Array[] = [];
    let loaded = 0;
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.byteLength;
      onProgress?.({ phase: 'download', file: path, loaded, total: Math.max(total, loaded) });
    }
    const bytes = new Uint8Array(loaded);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.byteLength;
    }
    const problem = await checkHubFile(tree, entry.id, path, bytes);
    if (problem) throw new ModelFileError(problem);
    onProgress?.({ phase: 'verify', file: path, loaded, total: loaded });
    return new Response(bytes, { status: 200, headers: { 'content-length': String(loaded) } });
  };
}

/**
 * Let the worker take its pending messages (a cancel()) between tokens. ORT's WASM session.run resolves without
 * giving the event loop a turn, so a generation would otherwise hold the worker until it ends. A MessageChannel
 * round trip is a real task turn without setTimeout's clamping.
 */
const turn = new MessageChannel();
function nextTask(): Promise<void> {
  return new Promise((resolve) => {
    turn.port1.onmessage = () => resolve();
    turn.port2.postMessage(null);
  });
}

/** Wrap a loaded model's forward() (called once per generated token) to yield a task turn first. */
function yieldBetweenTokens(pipe: TextGenerationPipeline) {
  const model = pipe.model as unknown as { forward(inputs: unknown): Promise<unknown> };
  const forward = model.forward.bind(model);
  model.forward = async (inputs) => {
    await nextTask();
    return forward(inputs);
  };
}

let generator: TextGenerationPipeline | null = null;
let generatorKey = '';
let embedder: FeatureExtractionPipeline | null = null;
let embedderId = '';
/** Generation (one at a time per worker), shared with Node's engine: shared/inference/generate.ts. */
const generation = new Generator(() => generator);

const api: InferenceWorkerApi = {
  async load(modelId, onProgress, preference = 'auto', hubHost = 'https://huggingface.co/') {
    const entry = findModel(modelId);
    if (!entry) throw new InferenceError('unknown-model', `"${modelId}" is not in the model catalogue.`);
    const start = performance.now();
    const choice: DeviceChoice =
      entry.task === 'text-generation'
        ? await chooseDevice(preference)
        : { device: 'wasm', reason: 'embeddings always run on WASM, where they are bit-identical everywhere' };
    if (entry.source === 'hub') {
      await prepareHub(entry, hubHost.endsWith('/') ? hubHost : `${hubHost}/`, onProgress);
    } else {
      const base = modelBasePath(entry);
      await verify(entry, base, onProgress);
      env.localModelPath = base;
      env.allowLocalModels = true;
      env.allowRemoteModels = false;
      env.fetch = defaultFetch;
    }
    const options = {
      device: choice.device,
      dtype: entry.source === 'hub' ? entry.dtype : ('fp32' as const),
      progress_callback: (p: { status?: string; file?: string; loaded?: number; total?: number }) => {
        if (p.status === 'progress')
          onProgress?.({ phase: 'load', file: p.file ?? '', loaded: p.loaded ?? 0, total: p.total ?? 0 });
      },
    };
    // One model per task; switching models (or devices) disposes the old one's session.
    if (entry.task === 'text-generation' && generatorKey !== `${modelId}@${choice.device}`) {
      await generator?.dispose();
      generator = null;
      generator = (await pipeline('text-generation', modelId, options)) as TextGenerationPipeline;
      yieldBetweenTokens(generator);
      generatorKey = `${modelId}@${choice.device}`;
    }
    if (entry.task === 'feature-extraction' && embedderId !== modelId) {
      await embedder?.dispose();
      embedder = null;
      embedder = (await pipeline('feature-extraction', modelId, options)) as FeatureExtractionPipeline;
      embedderId = modelId;
    }
    return { modelId, ...choice, ms: performance.now() - start };
  },

  cancel() {
    generation.cancel();
  },

  async embed(text) {
    if (!embedder)
      throw new InferenceError('no-model-loaded', 'No feature-extraction model is loaded; load one first.');
    if (text.length === 0 || text.length > 2000)
      throw new InferenceError('bad-params', 'text must be 1 to 2000 characters.');
    const output = (await embedder(text, { pooling: 'mean', normalize: true })) as { data: Float32Array };
    return Float32Array.from(output.data);
  },

  generate: (options, onToken) => generation.generate(options, onToken),

  score: (prompt, tokenIds) => generation.score(prompt, tokenIds),
  countTokens: async (prompt) => generation.countTokens(prompt),
};

// Callbacks (progress, streamed tokens) arrive as Comlink proxies made by the caller.
expose(api);
