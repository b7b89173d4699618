/**
 * How an OpenAI request body becomes the params a miner generates from: the same steps for the live endpoints
 * (`/v1/chat/completions`, `/v1/completions`) and for every line of a batch file, so a request means the same
 * thing either way. Parameters are checked (openai.ts), the model must be a subnet's, chat messages go through the
 * model's chat template, and the prompt must fit.
 */
import { MAX_PROMPT_CHARS, type GenerateParams } from '../shared/inference/protocol.ts';
import type { NetworkConfig, SubnetConfig } from '../shared/ledger/config.ts';
import type { ChatTemplate } from './chat-template.ts';
import {
  ApiError,
  badRequest,
  chatMessages,
  chatRequestSchema,
  completionRequestSchema,
  generateParams,
  parseRequest,
} from './openai.ts';

/** Which endpoint a request is for: chat completions or legacy (text) completions. */
export type RequestKind = 'chat' | 'text';

export const ENDPOINT_OF: Record<RequestKind, string> = { chat: '/v1/chat/completions', text: '/v1/completions' };

export interface CompileContext {
  /** The network the gateway's node joined: its subnets name the models. */
  network: () => NetworkConfig | null;
  templates: (model: string) => Promise<ChatTemplate>;
  /** A seed for sampling when the request names none. */
  randomSeed: () => number;
}

export interface Compiled {
  kind: RequestKind;
  subnet: SubnetConfig;
  params: GenerateParams;
  /** Streamed (and whether usage is asked for), or not. */
  stream: { usage: boolean } | null;
}

export const modelNotFound = (id: string) =>
  new ApiError(
    404,
    `The model '${id}' does not exist on this network (GET /v1/models lists the ones served).`,
    'invalid_request_error',
    'model_not_found',
    'model',
  );

/** The subnet serving `model`, or 404. */
export function subnetOf(network: NetworkConfig | null, model: string): SubnetConfig {
  const subnet = network?.subnets.find((s) => s.model === model);
  if (!subnet) throw modelNotFound(model);
  return subnet;
}

/** The generation params of one request body, or the ApiError a live endpoint answers with. */
export async function compileRequest(kind: RequestKind, body: unknown, ctx: CompileContext): Promise<Compiled> {
  if (kind === 'chat') {
    const req = parseRequest(chatRequestSchema, body);
    const subnet = subnetOf(ctx.network(), req.model);
    const prompt = (await ctx.templates(subnet.model)).render(chatMessages(req));
    if (prompt.length > MAX_PROMPT_CHARS)
      throw badRequest(
        `The messages are ${prompt.length} characters after the chat template; at most ${MAX_PROMPT_CHARS} fit.`,
        'messages',
        'context_length_exceeded',
      );
    const stream = req.stream ? { usage: req.stream_options?.include_usage === true } : null;
    return { kind, subnet, params: generateParams(req, prompt, ctx.randomSeed), stream };
  }
  const req = parseRequest(completionRequestSchema, body);
  const subnet = subnetOf(ctx.network(), req.model);
  const prompt = typeof req.prompt === 'string' ? req.prompt : req.prompt[0]!;
  if (prompt.length === 0 || prompt.length > MAX_PROMPT_CHARS)
    throw badRequest(
      `The prompt is ${prompt.length} characters; it must have 1 to ${MAX_PROMPT_CHARS}.`,
      'prompt',
      'context_length_exceeded',
    );
  const stream = req.stream ? { usage: req.stream_options?.include_usage === true } : null;
  return { kind, subnet, params: generateParams(req, prompt, ctx.randomSeed), stream };
}
