/**
 * What a node asks of its inference engine (a Web Worker in a tab, the same transformers.js build in Node):
 * load a catalogue model, generate with streamed text, cancel. The types are shared so the node core never
 * depends on where the engine runs.
 */
import type { finishReasons } from './protocol.ts';

export type DevicePreference = 'auto' | 'wasm' | 'webgpu';

export interface DeviceChoice {
  device: 'wasm' | 'webgpu';
  reason: string;
}

export interface LoadProgress {
  phase: 'download' | 'verify' | 'load';
  file: string;
  loaded: number;
  total: number;
}

export interface Loaded extends DeviceChoice {
  modelId: string;
  ms: number;
}

export interface GenerateOptions {
  prompt: string;
  maxNewTokens: number;
  /** Absent: greedy decoding, the path validators check. */
  sampling?: { seed: number; temperature: number; topK?: number | undefined; topP?: number | undefined } | undefined;
  /** Stop once the generated text contains one of these; the text is cut before it. */
  stop?: string[] | undefined;
}

export interface Generation {
  text: string;
  tokenIds: number[];
  promptTokens: number;
  ms: number;
  finish: (typeof finishReasons)[number];
}

export interface InferenceEngine {
  /** Verify and load a model; text generation runs on the chosen device. */
  load(
    modelId: string,
    onProgress?: (p: LoadProgress) => void,
    device?: DevicePreference,
    hubHost?: string,
  ): Promise<Loaded>;
  generate(options: GenerateOptions, onText?: (text: string) => unknown): Promise<Generation>;
  /** Stop the running generation after its current token; it resolves with finish "cancelled". */
  cancel(): Promise<void>;
}
