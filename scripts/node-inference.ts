/**
 * transformers.js in Node on the same onnxruntime-web WASM build the browser uses (not onnxruntime-node), so
 * Node and Chromium can be compared like for like, and so their outputs are bit-identical (INFERENCE.md).
 */
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-web';
import type { TextGenerationPipeline } from '@huggingface/transformers';
import { modelsDir } from './model-dirs.ts';

const dist = new URL('../node_modules/onnxruntime-web/dist/', import.meta.url);

export async function nodeTextGenerator(modelId: string, dir = modelsDir): Promise<TextGenerationPipeline> {
  ort.env.wasm.wasmBinary = readFileSync(new URL('ort-wasm-simd-threaded.asyncify.wasm', dist));
  ort.env.wasm.wasmPaths = { mjs: new URL('ort-wasm-simd-threaded.asyncify.mjs', dist).href };
  ort.env.wasm.numThreads = 1;
  (globalThis as Record<symbol, unknown>)[Symbol.for('onnxruntime')] = ort;
  const { env, pipeline } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = `${dir}/`;
  return (await pipeline('text-generation', modelId, { device: 'auto', dtype: 'fp32' })) as TextGenerationPipeline;
}

export async function greedy(gen: TextGenerationPipeline, prompt: string, maxNewTokens: number): Promise<number[]> {
  const inputs = gen.tokenizer(prompt);
  const out = (await gen.model.generate({ ...inputs, max_new_tokens: maxNewTokens, do_sample: false })) as {
    tolist(): bigint[][];
  };
  return out
    .tolist()[0]!
    .map(Number)
    .slice((inputs.input_ids as { dims: number[] }).dims.at(-1)!);
}
