/**
 * Text generation on a loaded transformers.js pipeline: greedy or seeded sampling, streamed text, stop strings
 * and cancellation. One function for the tab's inference worker and for Node, so a headless miner answers exactly
 * as a tab does (same transformers.js, same onnxruntime-web WASM build: ../shared/notes/INFERENCE.md).
 * In Node, set globalThis[Symbol.for('onnxruntime')] to onnxruntime-web before importing this module.
 */
import {
  InterruptableStoppingCriteria,
  LogitsProcessor,
  LogitsProcessorList,
  random,
  StoppingCriteria,
  TextStreamer,
  type PreTrainedTokenizer,
  type TextGenerationPipeline,
} from '@huggingface/transformers';
import { InferenceError } from '../errors.ts';
import type { GenerateOptions, Generation } from './engine.ts';

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
 * Nucleus (top-p) filtering, which transformers.js 4.3.1 declares (TopPLogitsWarper) but never applies: keep the
 * most probable tokens whose probabilities, after temperature, first add up to `topP`; the rest get -Infinity.
 * Ties keep the lower token id first, so every node filters alike.
 */
class NucleusFilter extends LogitsProcessor {
  constructor(private readonly topP: number) {
    super();
  }
  override _call(_inputIds: bigint[][], logits: { data: Float32Array; dims: number[] }) {
    const vocab = logits.dims.at(-1)!;
    for (let row = 0; row < logits.data.length / vocab; row++) {
      const l = logits.data.subarray(row * vocab, (row + 1) * vocab);
      const order = Array.from(l.keys()).sort((a, b) => l[b]! - l[a]! || a - b);
      const top = l[order[0]!]!;
      let total = 0;
      for (const i of order) total += Math.exp(l[i]! - top);
      let kept = 0;
      let mass = 0;
      while (kept < order.length && mass < this.topP) mass += Math.exp(l[order[kept++]!]! - top) / total;
      for (const i of order.slice(kept)) l[i] = -Infinity;
    }
    return logits;
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

function nucleus(topP: number): LogitsProcessorList {
  const list = new LogitsProcessorList();
  list.push(new NucleusFilter(topP));
  return list;
}

/**
 * One generation at a time on one pipeline (the sampling RNG is global to transformers.js): `generate` refuses a
 * second while one runs, and `cancel` stops the running one after its current token.
 */
export class Generator {
  private interrupt: InterruptableStoppingCriteria | null = null;

  constructor(private readonly pipe: () => TextGenerationPipeline | null) {}

  cancel(): void {
    this.interrupt?.interrupt();
  }

  async generate(
    { prompt, maxNewTokens, sampling, stop }: GenerateOptions,
    onText?: (text: string) => unknown,
  ): Promise<Generation> {
    const generator = this.pipe();
    if (!generator) throw new InferenceError('no-model-loaded', 'No model is loaded; load one first.');
    if (this.interrupt)
      throw new InferenceError('worker-busy', 'A generation is already running in this engine; queue requests.');
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1 || maxNewTokens > 512)
      throw new InferenceError('bad-params', 'maxNewTokens must be an integer from 1 to 512.');
    const start = performance.now();
    const tokenizer = generator.tokenizer;
    const inputs = tokenizer(prompt);
    const promptTokens = (inputs.input_ids as { dims: number[] }).dims.at(-1)!;
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
    if (sampling) random.seed(sampling.seed);
    let output: { tolist(): bigint[][] };
    try {
      output = (await yieldingEachStep(generator.model, () =>
        generator.model.generate({
          ...inputs,
          max_new_tokens: maxNewTokens,
          ...(sampling
            ? { do_sample: true, temperature: sampling.temperature, top_k: sampling.topK ?? 0 }
            : { do_sample: false }),
          ...(sampling?.topP !== undefined && sampling.topP < 1 ? { logits_processor: nucleus(sampling.topP) } : {}),
          streamer,
          stopping_criteria: stopStrings ? [running, stopStrings] : [running],
        }),
      )) as { tolist(): bigint[][] };
    } finally {
      this.interrupt = null;
    }
    await Promise.all(delivered);
    const newIds = output.tolist()[0]!.map(Number).slice(promptTokens);
    let text = tokenizer.decode(newIds, { skip_special_tokens: true });
    let finish: Generation['finish'] = running.interrupted ? 'cancelled' : 'length';
    if (stopStrings?.hit) {
      const cut = Math.min(...stop!.map((s) => text.indexOf(s)).filter((i) => i >= 0));
      text = text.slice(0, cut);
      finish = 'stop';
    } else if (finish === 'length' && newIds.length < maxNewTokens) finish = 'eos';
    return { text, tokenIds: newIds, promptTokens, ms: performance.now() - start, finish };
  }
}
