/** Typed handle on the inference worker (Comlink), created on first use. */
import { proxy, wrap, type Remote } from 'comlink';
import type { Generation, InferenceWorkerApi, LoadProgress } from '../../worker/inference.worker.ts';

let remote: Remote<InferenceWorkerApi> | undefined;

function worker(): Remote<InferenceWorkerApi> {
  remote ??= wrap<InferenceWorkerApi>(
    new Worker(new URL('../../worker/inference.worker.ts', import.meta.url), { type: 'module' }),
  );
  return remote;
}

export function loadModel(modelId: string, onProgress?: (p: LoadProgress) => void) {
  return worker().load(modelId, onProgress ? proxy(onProgress) : undefined);
}

export function generate(
  prompt: string,
  maxNewTokens: number,
  onToken?: (text: string) => unknown,
): Promise<Generation> {
  return worker().generate(prompt, maxNewTokens, onToken ? proxy(onToken) : undefined);
}

export function embed(text: string): Promise<Float32Array> {
  return worker().embed(text);
}
