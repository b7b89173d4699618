/**
 * transformers.js in Node on the same onnxruntime-web WASM build the browser uses (not onnxruntime-node), so
 * Node and Chromium can be compared like for like, and so their outputs are bit-identical (INFERENCE.md).
 */
import type { TextGenerationPipeline } from '@huggingface/transformers';
import { modelsDir } from './model-dirs.ts';
import { registerOnnxruntimeWeb } from '../core/nodejs/onnxruntime.ts';

export async function nodeTextGenerator(modelId: string, dir = modelsDir): Promise<TextGenerationPipeline> {
  registerOnnxruntimeWeb();
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
