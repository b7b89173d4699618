/** Typed handle on the inference worker (Comlink), created on first use. */
import { proxy, wrap, type Remote } from 'comlink';
import type {
  GenerateOptions,
  Generation,
  InferenceWorkerApi,
  Loaded,
  LoadProgress,
} from '../../worker/inference.worker.ts';
import type { DevicePreference } from '../../worker/device.ts';

let remote: Remote<InferenceWorkerApi> | undefined;

function worker(): Remote<InferenceWorkerApi> {
  remote ??= wrap<InferenceWorkerApi>(
    new Worker(new URL('../../worker/inference.worker.ts', import.meta.url), { type: 'module' }),
  );
  return remote;
}

export function loadModel(
  modelId: string,
  onProgress?: (p: LoadProgress) => void,
  device: DevicePreference = 'auto',
  hubHost?: string,
): Promise<Loaded> {
  return worker().load(modelId, onProgress ? proxy(onProgress) : undefined, device, hubHost);
}

export function generate(options: GenerateOptions, onToken?: (text: string) => unknown): Promise<Generation> {
  return worker().generate(options, onToken ? proxy(onToken) : undefined);
}

/** Stop the running generation after its current token. */
export function cancelGeneration(): Promise<void> {
  return worker().cancel();
}

export function embed(text: string): Promise<Float32Array> {
  return worker().embed(text);
}
