/**
 * OpenAI's wire shapes, as far as the gateway speaks them: the request bodies of `/v1/chat/completions` and
 * `/v1/completions` (validated with zod; a refusal names the parameter, as OpenAI's `param` does), how they map
 * to webtensor generation params, and the response, chunk and error objects. No I/O here.
 */
import { z } from 'zod';
import { MAX_NEW_TOKENS, type GenerateParams, type GenerateResult } from '../shared/inference/protocol.ts';

/** What `max_tokens` is when a request leaves it out. */
export const DEFAULT_MAX_TOKENS = 64;

/** OpenAI's error object; `status` is the HTTP status it goes with. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Seconds, for 429 and 503. */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }

  body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, 'invalid_request_error', code, param);

const stopSchema = z.union([z.string().min(1).max(32), z.array(z.string().min(1).max(32)).max(4)]).nullish();

/** Parameters both endpoints take. Unknown members are ignored, as most OpenAI-compatible servers do. */
const common = {
  model: z.string().min(1).max(128),
  max_tokens: z.number().int().min(1).max(MAX_NEW_TOKENS).nullish(),
  max_completion_tokens: z.number().int().min(1).max(MAX_NEW_TOKENS).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  seed: z.number().int().min(0).max(0xffffffff).nullish(),
  stop: stopSchema,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  n: z.literal(1, { error: 'only n = 1 is supported' }).nullish(),
  user: z.string().max(256).nullish(),
  // Accepted at their defaults only: a request that needs them gets a clear refusal, not a silent difference.
  presence_penalty: z.literal(0, { error: 'is not supported on this network (only 0)' }).nullish(),
  frequency_penalty: z.literal(0, { error: 'is not supported on this network (only 0)' }).nullish(),
  logprobs: z.union([z.literal(false), z.literal(null)], { error: 'is not supported on this network' }).optional(),
};

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(textPart).min(1)]),
  name: z.string().max(64).optional(),
});

export const chatRequestSchema = z.object({
  ...common,
  messages: z.array(message).min(1).max(256),
  tools: z.array(z.unknown()).max(0, { error: 'tools are not supported on this network' }).nullish(),
  response_format: z.object({ type: z.literal('text', { error: 'only response_format text is supported' }) }).nullish(),
});
export type ChatRequest = z.infer<typeof chatRequestSchema>;

export const completionRequestSchema = z.object({
  ...common,
  prompt: z.union([
    z.string(),
    z.array(z.string()).length(1, { error: 'give one prompt (batches are not supported)' }),
  ]),
  echo: z.literal(false, { error: 'is not supported on this network' }).nullish(),
  suffix: z.null({ error: 'is not supported on this network' }).optional(),
});
export type CompletionRequest = z.infer<typeof completionRequestSchema>;

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** Parse `body` with `schema`, or throw a 400 naming the first parameter that is wrong. */
export function parseRequest<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw badRequest('The request body must be a JSON object.');
  const parsed = schema.safeParse(body, { reportInput: true });
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const param = issue.path.map((p, k) => (typeof p === 'number' ? `[${p}]` : k === 0 ? String(p) : `.${String(p)}`));
  const name = param.join('') || null;
  const message =
    issue.input === undefined
      ? `Missing required parameter: '${name}'.`
      : `Invalid value for '${name}': ${issue.message}.`;
  throw badRequest(message, name, issue.input === undefined ? 'missing_required_parameter' : 'invalid_value');
}

/** Chat messages with their content as one string (text parts joined), developer messages as system ones. */
export function chatMessages(req: ChatRequest): ChatMessage[] {
  return req.messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
  }));
}

/**
 * The generation params for a request and its prompt text. Temperature 0 or absent is greedy decoding (top_p and
 * seed then change nothing, so the same prompt gives the same text, streamed or not); otherwise sampling with the
 * request's seed, or a fresh one.
 */
export function generateParams(
  req: Pick<ChatRequest, 'model' | 'max_tokens' | 'max_completion_tokens' | 'temperature' | 'top_p' | 'seed' | 'stop'>,
  prompt: string,
  randomSeed: () => number,
): GenerateParams {
  const stop = req.stop == null ? [] : typeof req.stop === 'string' ? [req.stop] : req.stop;
  const temperature = req.temperature ?? 0;
  return {
    model: req.model,
    prompt,
    maxNewTokens: req.max_completion_tokens ?? req.max_tokens ?? DEFAULT_MAX_TOKENS,
    ...(temperature > 0
      ? {
          sampling: {
            seed: req.seed ?? randomSeed(),
            temperature,
            ...(req.top_p != null && req.top_p < 1 ? { topP: req.top_p } : {}),
          },
        }
      : {}),
    ...(stop.length > 0 ? { stop } : {}),
  };
}

/** OpenAI's finish reasons: the network's `eos` and `stop` are both a natural stop. */
export const finishReason = (r: GenerateResult): 'stop' | 'length' => (r.finish === 'length' ? 'length' : 'stop');

export const usageOf = (r: GenerateResult) => ({
  prompt_tokens: r.promptTokens,
  completion_tokens: r.tokenIds.length,
  total_tokens: r.promptTokens + r.tokenIds.length,
});

/** What every response object of one completion shares. */
export interface CompletionMeta {
  id: string;
  created: number;
  model: string;
}

/** Where a completion's signed result can be fetched, and who answered: added to the final object or chunk. */
export const webtensorOf = (id: string, r: GenerateResult) => ({
  miner: r.miner,
  request_id: r.requestId,
  result: `/v1/webtensor/results/${id}`,
});

export function chatCompletion(meta: CompletionMeta, r: GenerateResult) {
  return {
    ...meta,
    object: 'chat.completion',
    system_fingerprint: r.modelHash.slice(0, 16),
    choices: [
      { index: 0, message: { role: 'assistant', content: r.text }, logprobs: null, finish_reason: finishReason(r) },
    ],
    usage: usageOf(r),
    webtensor: webtensorOf(meta.id, r),
  };
}

export function textCompletion(meta: CompletionMeta, r: GenerateResult) {
  return {
    ...meta,
    object: 'text_completion',
    system_fingerprint: r.modelHash.slice(0, 16),
    choices: [{ index: 0, text: r.text, logprobs: null, finish_reason: finishReason(r) }],
    usage: usageOf(r),
    webtensor: webtensorOf(meta.id, r),
  };
}

/** One streamed chunk: `text` (a content delta), or the final one with the finish reason. */
export function chatChunk(
  meta: CompletionMeta,
  delta: { role?: 'assistant'; content?: string },
  finish: string | null,
) {
  return {
    ...meta,
    object: 'chat.completion.chunk',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  };
}

export function textChunk(meta: CompletionMeta, text: string, finish: string | null) {
  return { ...meta, object: 'text_completion', choices: [{ index: 0, text, logprobs: null, finish_reason: finish }] };
}
