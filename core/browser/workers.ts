/**
 * The tab's two Web Workers behind typed Comlink handles, each created on first use: the consensus worker
 * (Yuma, ledger replay straight from IndexedDB, proof of work) and the inference worker (transformers.js).
 */
import { proxy, wrap, type Remote } from 'comlink';
import type { InferenceEngine } from '../../shared/inference/engine.ts';
import type { InferenceWorkerApi } from '../../worker/inference.worker.ts';
import type { YumaWorkerApi } from '../../worker/yuma.worker.ts';

let yuma: Remote<YumaWorkerApi> | undefined;
let inference: Remote<InferenceWorkerApi> | undefined;

export function yumaWorker(): Remote<YumaWorkerApi> {
  yuma ??= wrap<YumaWorkerApi>(new Worker(new URL('../../worker/yuma.worker.ts', import.meta.url), { type: 'module' }));
  return yuma;
}

export function inferenceWorker(): Remote<InferenceWorkerApi> {
  inference ??= wrap<InferenceWorkerApi>(
    new Worker(new URL('../../worker/inference.worker.ts', import.meta.url), { type: 'module' }),
  );
  return inference;
}

/** The inference worker as the node core's engine; callbacks cross the worker boundary as Comlink proxies. */
export const workerInferenceEngine: InferenceEngine = {
  load: (modelId, onProgress, device = 'auto', hubHost) =>
    inferenceWorker().load(modelId, onProgress ? proxy(onProgress) : undefined, device, hubHost),
  generate: (options, onText) => inferenceWorker().generate(options, onText ? proxy(onText) : undefined),
  score: (prompt, tokenIds) => inferenceWorker().score(prompt, tokenIds),
  countTokens: (prompt) => inferenceWorker().countTokens(prompt),
  cancel: () => inferenceWorker().cancel(),
};

/** Mean-pooled embedding with the loaded feature-extraction model (diagnostics). */
export const embed = (text: string): Promise<Float32Array> => inferenceWorker().embed(text);
