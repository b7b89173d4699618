/**
 * The inference engine of a Node process: transformers.js on the same onnxruntime-web WASM build a tab uses (not
 * onnxruntime-node), fp32, one thread, so a headless miner's greedy answers are bit-identical to a tab's
 * (../shared/notes/INFERENCE.md) and a tab validator scores it like any miner. Models come from disk: generated
 * ones from generated/models, the others from ../shared/models; every file is checked against the catalogue's
 * sha256 before use. Hub models are not served by Node nodes yet.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TextGenerationPipeline } from '@huggingface/transformers';
import {
  catalogue,
  defaultGenerationPreference,
  findModel,
  type ServedModelEntry,
} from '../../shared/inference/catalogue.ts';
import type { Generator } from '../../shared/inference/generate.ts';
import type { GenerateOptions, InferenceEngine, Loaded, LoadProgress } from '../../shared/inference/engine.ts';
import { checkModelFile } from '../../shared/inference/verify.ts';
import { InferenceError } from '../../shared/errors.ts';
import { defaultModelDirs, type ModelDirs } from './model-dirs.ts';
import { registerOnnxruntimeWeb } from './onnxruntime.ts';

export { defaultModelDirs, type ModelDirs } from './model-dirs.ts';

export class NodeInferenceEngine implements InferenceEngine {
  private pipe: TextGenerationPipeline | null = null;
  private loadedId = '';
  private generation: Generator | null = null;

  constructor(private readonly dirs: ModelDirs = defaultModelDirs()) {}

  /** Text-generation models whose files are on this machine (the generated tiny Llama at least), best first. */
  available(): string[] {
    const here = catalogue
      .filter((e) => e.task === 'text-generation' && existsSync(join(this.dirOf(e), e.id)))
      .map((e) => e.id);
    const rank = (id: string) => {
      const k = (defaultGenerationPreference as readonly string[]).indexOf(id);
      return k < 0 ? Infinity : k;
    };
    return here.sort((a, b) => rank(a) - rank(b));
  }

  async load(modelId: string, onProgress?: (p: LoadProgress) => void): Promise<Loaded> {
    const entry = findModel(modelId);
    if (!entry) throw new InferenceError('unknown-model', `"${modelId}" is not in the model catalogue.`);
    if (entry.task !== 'text-generation')
      throw new InferenceError('unknown-model', `${modelId} is not a text-generation model.`);
    if (entry.source === 'hub')
      throw new InferenceError(
        'hub-unreachable',
        `${modelId} comes from the Hugging Face hub, and Node nodes serve models on disk only; pick webtensor/tiny-llama.`,
      );
    const start = performance.now();
    const dir = this.dirOf(entry);
    // Check every file before the runtime reads any of it: a changed byte is refused with the file's name.
    const total = entry.files.reduce((s, f) => s + f.size, 0);
    let loaded = 0;
    for (const file of entry.files) {
      let bytes: Buffer;
      try {
        bytes = await readFile(join(dir, entry.id, file.path));
      } catch {
        throw new InferenceError(
          'model-file',
          `${join(dir, entry.id, file.path)} is missing. ${
            entry.source === 'generated'
              ? 'Run `npm install` again: it generates this model.'
              : 'Put ../shared/models beside the repository, or pick webtensor/tiny-llama.'
          }`,
        );
      }
      await checkModelFile(entry, file, new Uint8Array(bytes));
      loaded += file.size;
      onProgress?.({ phase: 'verify', file: file.path, loaded, total });
    }
    if (this.loadedId !== modelId) {
      registerOnnxruntimeWeb();
      const { env, pipeline } = await import('@huggingface/transformers');
      const { Generator } = await import('../../shared/inference/generate.ts');
      env.allowRemoteModels = false;
      env.allowLocalModels = true;
      env.localModelPath = `${dir}/`;
      await this.pipe?.dispose();
      this.pipe = (await pipeline('text-generation', modelId, {
        // transformers.js's Node build lists no devices of its own; 'auto' takes the registered runtime's WASM.
        device: 'auto',
        dtype: 'fp32',
        progress_callback: (p: { status?: string; file?: string; loaded?: number; total?: number }) => {
          if (p.status === 'progress')
            onProgress?.({ phase: 'load', file: p.file ?? '', loaded: p.loaded ?? 0, total: p.total ?? 0 });
        },
      })) as TextGenerationPipeline;
      this.generation ??= new Generator(() => this.pipe);
      this.loadedId = modelId;
    }
    return {
      modelId,
      device: 'wasm',
      reason: 'Node runs the WASM backend (the one every node can check)',
      ms: performance.now() - start,
    };
  }

  generate(options: GenerateOptions, onText?: (text: string) => unknown) {
    return this.loaded().generate(options, onText);
  }

  score(prompt: string, tokenIds: number[]) {
    return this.loaded().score(prompt, tokenIds);
  }

  async countTokens(prompt: string) {
    return this.loaded().countTokens(prompt);
  }

  async cancel(): Promise<void> {
    this.generation?.cancel();
  }

  private loaded(): Generator {
    if (!this.generation) throw new InferenceError('no-model-loaded', 'No model is loaded; load one first.');
    return this.generation;
  }

  private dirOf(entry: ServedModelEntry): string {
    return entry.source === 'generated' ? this.dirs.generated : this.dirs.shared;
  }
}
