/**
 * Model inference in a Web Worker, exposed over Comlink. Files come from our own server (/models/<version>/…)
 * and are checked against the catalogue's sha256 before use; ORT's wasm is ours too, never a CDN. Anything a
 * validator may check runs on the pinned path: WASM backend, fp32, batch 1, greedy (../shared/notes/INFERENCE.md).
 */
import { expose } from 'comlink';
import {
  env,
  pipeline,
  TextStreamer,
  type FeatureExtractionPipeline,
  type TextGenerationPipeline,
} from '@huggingface/transformers';
import ortWasm from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';
import ortMjs from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.mjs?url';
import { findModel, modelBasePath, type ModelEntry } from '../shared/inference/catalogue.ts';
import { checkModelFile } from '../shared/inference/verify.ts';

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.backends.onnx.wasm!.wasmPaths = { wasm: ortWasm, mjs: ortMjs };

export interface LoadProgress {
  phase: 'verify' | 'load';
  file: string;
  loaded: number;
  total: number;
}

export interface Generation {
  text: string;
  tokenIds: number[];
  promptTokens: number;
  ms: number;
}

export interface InferenceWorkerApi {
  load(
    modelId: string,
    onProgress?: (p: LoadProgress) => void,
  ): Promise<{ modelId: string; device: 'wasm'; ms: number }>;
  generate(prompt: string, maxNewTokens: number, onToken?: (text: string) => unknown): Promise<Generation>;
  /** Mean-pooled, L2-normalised embedding of `text` with the loaded feature-extraction model. */
  embed(text: string): Promise<Float32Array>;
}

/** Fetch every file of the model and check it against the catalogue; a mismatch names the file. */
async function verify(entry: ModelEntry, base: string, onProgress?: (p: LoadProgress) => void) {
  const total = entry.files.reduce((s, f) => s + f.size, 0);
  let loaded = 0;
  for (const file of entry.files) {
    const res = await fetch(`${base}${entry.id}/${file.path}`);
    if (!res.ok)
      throw new Error(
        `The server has no ${file.path} for ${entry.id} (HTTP ${res.status}). Is ../shared/models present?`,
      );
    await checkModelFile(entry, file, await res.arrayBuffer());
    loaded += file.size;
    onProgress?.({ phase: 'verify', file: file.path, loaded, total });
  }
}

let generator: TextGenerationPipeline | null = null;
let embedder: FeatureExtractionPipeline | null = null;
const loadedIds: Partial<Record<'text-generation' | 'feature-extraction', string>> = {};

const api: InferenceWorkerApi = {
  async load(modelId, onProgress) {
    const entry = findModel(modelId);
    if (!entry) throw new Error(`"${modelId}" is not in the model catalogue.`);
    const start = performance.now();
    const base = modelBasePath(entry);
    await verify(entry, base, onProgress);
    env.localModelPath = base;
    const options = {
      device: 'wasm' as const,
      dtype: 'fp32' as const,
      progress_callback: (p: { status?: string; file?: string; loaded?: number; total?: number }) => {
        if (p.status === 'progress')
          onProgress?.({ phase: 'load', file: p.file ?? '', loaded: p.loaded ?? 0, total: p.total ?? 0 });
      },
    };
    // One model per task; switching models disposes the old one's session.
    if (entry.task === 'text-generation' && loadedIds['text-generation'] !== modelId) {
      await generator?.dispose();
      generator = (await pipeline('text-generation', modelId, options)) as TextGenerationPipeline;
    }
    if (entry.task === 'feature-extraction' && loadedIds['feature-extraction'] !== modelId) {
      await embedder?.dispose();
      embedder = (await pipeline('feature-extraction', modelId, options)) as FeatureExtractionPipeline;
    }
    loadedIds[entry.task] = modelId;
    return { modelId, device: 'wasm', ms: performance.now() - start };
  },

  async embed(text) {
    if (!embedder) throw new Error('No feature-extraction model is loaded; load one first.');
    if (text.length === 0 || text.length > 2000) throw new Error('text must be 1 to 2000 characters.');
    const output = (await embedder(text, { pooling: 'mean', normalize: true })) as { data: Float32Array };
    return Float32Array.from(output.data);
  },

  async generate(prompt, maxNewTokens, onToken) {
    if (!generator) throw new Error('No model is loaded; load one first.');
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1 || maxNewTokens > 512)
      throw new Error('maxNewTokens must be an integer from 1 to 512.');
    const start = performance.now();
    const inputs = generator.tokenizer(prompt);
    // Token callbacks reach the caller on their own Comlink channel: wait for each to be acknowledged before
    // returning, so the caller has every streamed piece before it sees the result.
    const delivered: Promise<unknown>[] = [];
    const streamer = onToken
      ? new TextStreamer(generator.tokenizer, {
          skip_prompt: true,
          callback_function: (t: string) => void delivered.push(Promise.resolve(onToken(t))),
        })
      : undefined;
    const output = (await generator.model.generate({
      ...inputs,
      max_new_tokens: maxNewTokens,
      do_sample: false,
      streamer,
    })) as {
      tolist(): bigint[][];
    };
    await Promise.all(delivered);
    const ids = output.tolist()[0]!.map(Number);
    const promptTokens = (inputs.input_ids as { dims: number[] }).dims.at(-1)!;
    const newIds = ids.slice(promptTokens);
    return {
      text: generator.tokenizer.decode(newIds, { skip_special_tokens: true }),
      tokenIds: newIds,
      promptTokens,
      ms: performance.now() - start,
    };
  },
};

// Callbacks (progress, streamed tokens) arrive as Comlink proxies made by the caller.
expose(api);
