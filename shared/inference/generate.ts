/**
 * Text generation on a loaded transformers.js pipeline, with our own decode step (sampler.ts): streamed text, stop
 * strings, cancellation, and per token the signed-ready candidates a validator checks. Also `score`, one
 * teacher-forced pass over someone else's tokens (an audit's stage 2). One module for the tab's inference worker
 * and for Node, so a headless miner answers exactly as a tab does (same transformers.js, same onnxruntime-web WASM
 * build: ../shared/notes/INFERENCE.md). In Node, set globalThis[Symbol.for('onnxruntime')] to onnxruntime-web
 * before importing this module.
 */
import {
  InterruptableStoppingCriteria,
  LogitsProcessor,
  LogitsProcessorList,
  StoppingCriteria,
  Tensor,
  TextStreamer,
  type PreTrainedTokenizer,
  type TextGenerationPipeline,
} from '@huggingface/transformers';
import { InferenceError } from '../errors.ts';
import type { GenerateOptions, Generation } from './engine.ts';
import { decodeStep, samplingProblem, scorePosition, type Reference, type Sampling, type Step } from './sampler.ts';

/** The most tokens one call generates or scores. */
const MAX_TOKENS = 512;

/** Stops generation once the new text contains a stop string. */
class StopStrings extends StoppingCriteria {
  hit = false;
  constructor(
    private readonly tokenizer: PreTrainedTokenizer,
    private readonly promptTokens: number,
    private readonly stops: string[],
  ) {
    super();
  }
  override _call(inputIds: (number | bigint)[][]): boolean[] {
    return inputIds.map((ids) => {
      const text = this.tokenizer.decode(ids.slice(this.promptTokens).map(Number), { skip_special_tokens: true });
      this.hit ||= this.stops.some((s) => text.includes(s));
      return this.hit;
    });
  }
}

/**
 * Let the event loop run: onnxruntime-web's WASM runs resolve as microtasks, so a generation would otherwise hold
 * its thread from the first token to the last: streamed pieces would leave only at the end (a Node miner) and a
 * cancel could not arrive (a Node miner, or a tab's inference worker). setImmediate in Node; a MessageChannel
 * elsewhere (setTimeout is clamped to 4 ms when nested, longer than a token takes).
 */
function yieldToEventLoop(): Promise<void> {
  if (typeof setImmediate === 'function') return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/** Run `generate` with a yield to the event loop before each forward pass of `model` (one per token). */
async function yieldingEachStep<T>(model: object, generate: () => Promise<T>): Promise<T> {
  const m = model as { forward: (...args: unknown[]) => Promise<unknown> };
  const forward = m.forward;
  m.forward = async (...args: unknown[]) => {
    await yieldToEventLoop();
    return forward.apply(model, args);
  };
  try {
    return await generate();
  } finally {
    m.forward = forward;
  }
}

/**
 * Our decode step inside transformers.js's loop: it records the step for the raw logits row and leaves only the
 * chosen token standing, so transformers.js's greedy pick (argmax) takes it.
 *
 * Raw logits: transformers.js 4.3.1 (`PreTrainedModel._get_logits_processor`) builds its own processors from the
 * generation config first (repetition penalty, no-repeat n-gram, bad words, min length, min new tokens, forced
 * BOS/EOS, suppress tokens, suppress at begin, classifier-free guidance, then temperature when do_sample) and
 * appends the caller's `logits_processor` list after them, so ours runs last. `RAW_LOGITS` sets every one of those
 * fields to its neutral value whatever the model's config.json or generation_config.json says (call arguments
 * override both), so no processor runs before ours and each step sees the model's own distribution.
 */
class DecodeChoice extends LogitsProcessor {
  readonly steps: Step[] = [];

  constructor(
    private readonly promptTokens: number,
    private readonly sampling: Sampling | undefined,
  ) {
    super();
  }

  override _call(inputIds: bigint[][], logits: { data: Float32Array; dims: number[] }) {
    if (inputIds.length !== 1) throw new InferenceError('bad-params', 'Generation runs one sequence at a time.');
    const row = logits.data;
    // The position of the token about to be chosen, 0 for the first generated one.
    const step = decodeStep(row, inputIds[0]!.length - this.promptTokens, this.sampling);
    this.steps.push(step);
    row.fill(-Infinity);
    row[step.token] = 0;
    return logits;
  }
}

/**
 * Generation-config fields at the values that add no logits processor (see DecodeChoice). Typed loosely: the
 * library's types do not admit the nulls its defaults use.
 */
const RAW_LOGITS: Record<string, unknown> = {
  do_sample: false,
  num_beams: 1,
  repetition_penalty: 1,
  no_repeat_ngram_size: 0,
  bad_words_ids: null,
  min_length: 0,
  min_new_tokens: 0,
  forced_bos_token_id: null,
  forced_eos_token_id: null,
  suppress_tokens: null,
  begin_suppress_tokens: null,
  guidance_scale: null,
};

function checkLength(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_TOKENS)
    throw new InferenceError('bad-params', `${what} must be an integer from 1 to ${MAX_TOKENS}.`);
}

/** Refuse ids the model cannot embed before it runs (out of range, ORT fails on WASM and may not on WebGPU). */
function checkTokenIds(tokenIds: number[], vocab: number | undefined): void {
  const bad = tokenIds.find((id) => !Number.isInteger(id) || id < 0 || (vocab !== undefined && id >= vocab));
  if (bad !== undefined)
    throw new InferenceError(
      'bad-params',
      `Token id ${bad} is outside the model's vocabulary (${vocab ?? '?'} tokens).`,
    );
}

/**
 * One call at a time on one pipeline (generate or score; the pipeline's session is not shared): a second call is
 * refused while one runs, and `cancel` stops a running generation after its current token.
 */
export class Generator {
  private interrupt: InterruptableStoppingCriteria | null = null;
  private busy = false;

  constructor(private readonly pipe: () => TextGenerationPipeline | null) {}

  cancel(): void {
    this.interrupt?.interrupt();
  }

  async generate(
    { prompt, maxNewTokens, sampling, stop }: GenerateOptions,
    onText?: (text: string) => unknown,
  ): Promise<Generation> {
    const generator = this.claim();
    try {
      checkLength(maxNewTokens, 'maxNewTokens');
      const problem = sampling && samplingProblem(sampling);
      if (problem) throw new InferenceError('bad-params', `Sampling parameters: ${problem}.`);
      return await this.run(generator, { prompt, maxNewTokens, sampling, stop }, onText);
    } finally {
      this.busy = false;
    }
  }

  /**
   * How the loaded model sees `tokenIds` after `prompt`: one teacher-forced forward pass over prompt and tokens,
   * and per token its rank, its quantized log-prob and the model's own candidates (sampler.ts, scorePosition).
   */
  /** How many tokens `prompt` takes, and the model's context (positions), if its config says. */
  countTokens(prompt: string): { tokens: number; context: number | null } {
    const generator = this.pipe();
    if (!generator) throw new InferenceError('no-model-loaded', 'No model is loaded; load one first.');
    const ids = generator.tokenizer(prompt).input_ids as { dims: number[] };
    return { tokens: ids.dims.at(-1)!, context: contextOf(generator) };
  }

  async score(prompt: string, tokenIds: number[]): Promise<Reference> {
    const generator = this.claim();
    try {
      checkLength(tokenIds.length, 'The number of tokens to score');
      checkTokenIds(tokenIds, (generator.model.config as { vocab_size?: number }).vocab_size);
      const promptIds = generator.tokenizer(prompt).input_ids.tolist()[0] as bigint[];
      if (promptIds.length === 0) throw new InferenceError('bad-params', 'The prompt gives no tokens to start from.');
      checkContext(generator, promptIds.length, tokenIds.length);
      // Position i's distribution comes from the prompt and tokens before i: the last token is never an input,
      // so scoring needs exactly the positions generating did.
      const inputs = [...promptIds, ...tokenIds.slice(0, -1).map(BigInt)];
      const rows = await lastLogits(generator, inputs, tokenIds.length);
      const eos = new Set(eosTokenIds(generator));
      return tokenIds.map((id, i) => ({ ...scorePosition(rows[i]!, id), eos: eos.has(id) }));
    } finally {
      this.busy = false;
    }
  }

  private claim(): TextGenerationPipeline {
    const generator = this.pipe();
    if (!generator) throw new InferenceError('no-model-loaded', 'No model is loaded; load one first.');
    if (this.busy)
      throw new InferenceError(
        'worker-busy',
        'A generation or a scoring is already running in this engine; queue requests.',
      );
    this.busy = true;
    return generator;
  }

  private async run(
    generator: TextGenerationPipeline,
    { prompt, maxNewTokens, sampling, stop }: GenerateOptions,
    onText?: (text: string) => unknown,
  ): Promise<Generation> {
    const start = performance.now();
    const tokenizer = generator.tokenizer;
    const inputs = tokenizer(prompt);
    const promptTokens = (inputs.input_ids as { dims: number[] }).dims.at(-1)!;
    checkContext(generator, promptTokens, maxNewTokens);
    // Streamed pieces may be delivered asynchronously (a worker's callback channel): wait for each before
    // returning, so the caller has every streamed piece before it sees the result.
    const delivered: Promise<unknown>[] = [];
    const streamer = onText
      ? new TextStreamer(tokenizer, {
          skip_prompt: true,
          callback_function: (t: string) => void delivered.push(Promise.resolve(onText(t)).catch(() => {})),
        })
      : undefined;
    const stopStrings = stop?.length ? new StopStrings(tokenizer, promptTokens, stop) : null;
    const running = (this.interrupt = new InterruptableStoppingCriteria());
    const choice = new DecodeChoice(promptTokens, sampling);
    const processors = new LogitsProcessorList();
    processors.push(choice);
    let output: { tolist(): bigint[][] };
    try {
      output = (await yieldingEachStep(generator.model, () =>
        generator.model.generate({
          ...inputs,
          ...RAW_LOGITS,
          max_new_tokens: maxNewTokens,
          logits_processor: processors,
          streamer,
          stopping_criteria: stopStrings ? [running, stopStrings] : [running],
        }),
      )) as { tolist(): bigint[][] };
    } finally {
      this.interrupt = null;
    }
    await Promise.all(delivered);
    const newIds = output.tolist()[0]!.map(Number).slice(promptTokens);
    if (choice.steps.length !== newIds.length || choice.steps.some((s, i) => s.token !== newIds[i]))
      throw new Error('transformers.js did not take the decode step’s tokens; check its logits processors.');
    let text = tokenizer.decode(newIds, { skip_special_tokens: true });
    let finish: Generation['finish'] = running.interrupted ? 'cancelled' : 'length';
    if (stopStrings?.hit) {
      const cut = Math.min(...stop!.map((s) => text.indexOf(s)).filter((i) => i >= 0));
      text = text.slice(0, cut);
      finish = 'stop';
    } else if (finish === 'length' && (newIds.length < maxNewTokens || eosTokenIds(generator).includes(newIds.at(-1)!)))
      // Ended by the model's end token, also when that came as the last token allowed: an audit requires "eos"
      // exactly when the answer ends with the end token (bench:infer found this at 2 answers in 1000).
      finish = 'eos';
    return {
      text,
      tokenIds: newIds,
      steps: choice.steps,
      promptTokens,
      ms: performance.now() - start,
      finish,
    };
  }
}

/**
 * One forward pass over `ids` (batch 1, no cache) and the float32 logits rows of its last `keep` positions. Asks
 * the model for just those rows where it can (num_logits_to_keep), and frees GPU-held outputs.
 */
async function lastLogits(generator: TextGenerationPipeline, ids: bigint[], keep: number): Promise<Float32Array[]> {
  const model = generator.model as unknown as {
    forward(inputs: Record<string, Tensor>): Promise<Record<string, Tensor>>;
    sessions: Record<string, { inputNames: string[] } | undefined>;
  };
  const inputs: Record<string, Tensor> = {
    input_ids: new Tensor('int64', BigInt64Array.from(ids), [1, ids.length]),
    attention_mask: new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
  };
  if (model.sessions['model']?.inputNames.includes('num_logits_to_keep'))
    inputs['num_logits_to_keep'] = new Tensor('int64', BigInt64Array.of(BigInt(keep)), []);
  const outputs = await model.forward(inputs);
  try {
    const logits = outputs['logits']!.to('float32');
    const [, kept, vocab] = logits.dims as [number, number, number];
    const data = logits.data as Float32Array;
    return Array.from({ length: keep }, (_, i) =>
      data.subarray((kept - keep + i) * vocab, (kept - keep + i + 1) * vocab),
    );
  } finally {
    for (const t of Object.values(outputs)) if (t.location === 'gpu-buffer') t.dispose();
  }
}

/** The model's end-of-sequence token ids (generation config first, then model config, then the tokenizer's). */
function eosTokenIds(generator: TextGenerationPipeline): number[] {
  const model = generator.model as unknown as {
    generation_config?: { eos_token_id?: number | number[] | null };
    config: { eos_token_id?: number | number[] | null };
  };
  const id =
    model.generation_config?.eos_token_id ??
    model.config.eos_token_id ??
    (generator.tokenizer as unknown as { eos_token_id?: number }).eos_token_id;
  return id === undefined || id === null ? [] : Array.isArray(id) ? id : [id];
}

/** The model's context in positions (config.max_position_embeddings), or null when its config does not say. */
function contextOf(generator: TextGenerationPipeline): number | null {
  const n = (generator.model.config as { max_position_embeddings?: unknown }).max_position_embeddings;
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : null;
}

/**
 * Refuse a request the model cannot hold: ORT would fail in the middle with "out of data bounds". Generating n
 * tokens after p prompt tokens feeds p + n - 1 positions.
 */
function checkContext(generator: TextGenerationPipeline, promptTokens: number, newTokens: number): void {
  const context = contextOf(generator);
  if (context !== null && promptTokens + newTokens - 1 > context)
    throw new InferenceError(
      'bad-params',
      `The prompt (${promptTokens} tokens) and ${newTokens} new tokens exceed the model's context of ${context} tokens.`,
    );
}
