/**
 * What a node asks of its inference engine (a Web Worker in a tab, the same transformers.js build in Node):
 * load a catalogue model, generate with streamed text and per-token candidates, score someone else's tokens,
 * cancel. The types are shared so the node core never depends on where the engine runs.
 */
import type { finishReasons } from './protocol.ts';
import type { Reference, Sampling, Step } from './sampler.ts';

export type { Candidate, Reference, Sampling, ScoredPosition, Step } from './sampler.ts';

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
  /** Absent: greedy decoding. Seeded sampling as sampler.ts's selectToken defines it. */
  sampling?: Sampling | undefined;
  /** Stop once the generated text contains one of these; the text is cut before it. */
  stop?: string[] | undefined;
}

export interface Generation {
  text: string;
  tokenIds: number[];
  /** One decode step per token id: the candidates it was chosen from (sampler.ts); what a validator checks. */
  steps: Step[];
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
  /**
   * The loaded model's view of `tokenIds` generated after `prompt`, one teacher-forced pass: per token its rank,
   * quantized log-prob and the model's own candidates (an audit's stage 2). One call at a time, like generate.
   */
  score(prompt: string, tokenIds: number[]): Promise<Reference>;
  /** How many tokens `prompt` takes, and the model's context in positions (null: unknown). */
  countTokens(prompt: string): Promise<{ tokens: number; context: number | null }>;
  /** Stop the running generation after its current token; it resolves with finish "cancelled". */
  cancel(): Promise<void>;
}
