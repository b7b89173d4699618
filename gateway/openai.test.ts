/**
 * OpenAI's request bodies: every bad parameter refused with a 400 naming it, valid bodies parsed; and how a
 * request becomes generation params, chat messages and finish reasons.
 */
import { describe, expect, it } from 'vitest';
import type { GenerateResult } from '../shared/inference/protocol.ts';
import {
  ApiError,
  chatMessages,
  chatRequestSchema,
  completionRequestSchema,
  DEFAULT_MAX_TOKENS,
  finishReason,
  generateParams,
  parseRequest,
  type ChatRequest,
} from './openai.ts';

const chat = { model: 'webtensor/tiny-llama', messages: [{ role: 'user', content: 'Hello' }] };
const completion = { model: 'webtensor/tiny-llama', prompt: 'Once upon a time' };

/** The ApiError that parsing `body` throws (fails the test when it parses). */
function refusal(schema: Parameters<typeof parseRequest>[0], body: unknown): ApiError {
  try {
    parseRequest(schema, body);
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    return e as ApiError;
  }
  throw new Error(`expected ${JSON.stringify(body)} to be refused`);
}

/** Bad chat bodies (the valid one with `change` over it) and the parameter each refusal must name. */
const badChat: [string, Record<string, unknown>, string][] = [
  ['max_tokens over 128', { max_tokens: 1000 }, 'max_tokens'],
  ['max_tokens 0', { max_tokens: 0 }, 'max_tokens'],
  ['max_tokens not an integer', { max_tokens: 1.5 }, 'max_tokens'],
  ['max_completion_tokens over 128', { max_completion_tokens: 129 }, 'max_completion_tokens'],
  ['temperature over 2', { temperature: 3 }, 'temperature'],
  ['top_p 0', { top_p: 0 }, 'top_p'],
  ['n 2', { n: 2 }, 'n'],
  ['5 stop strings', { stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
  ['a 40-character stop string', { stop: 'x'.repeat(40) }, 'stop'],
  ['no messages', { messages: [] }, 'messages'],
  ['a tool message', { messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].role'],
  ['frequency_penalty 0.5', { frequency_penalty: 0.5 }, 'frequency_penalty'],
  ['presence_penalty 1', { presence_penalty: 1 }, 'presence_penalty'],
  ['logprobs', { logprobs: true }, 'logprobs'],
  ['tools', { tools: [{}] }, 'tools'],
  ['a json response_format', { response_format: { type: 'json_object' } }, 'response_format.type'],
  ['a model that is not a string', { model: 7 }, 'model'],
];

describe('parseRequest', () => {
  it.each(badChat)('refuses %s with a 400 naming the parameter', (_what, change, param) => {
    const error = refusal(chatRequestSchema, { ...chat, ...change });
    expect(error.status).toBe(400);
    expect(error.param).toBe(param);
    expect(error.type).toBe('invalid_request_error');
    expect(error.message).toContain(param);
    expect(error.body()).toEqual({
      error: { message: error.message, type: 'invalid_request_error', param, code: error.code },
    });
  });

  // zod 4 reports an issue's input only when asked (reportInput): without it every refusal read as a missing one.
  it.each(badChat)('refuses %s with code invalid_value', (_what, change) => {
    expect(refusal(chatRequestSchema, { ...chat, ...change }).code).toBe('invalid_value');
  });

  it('refuses a missing parameter with code missing_required_parameter', () => {
    const noContent = refusal(chatRequestSchema, { ...chat, messages: [{ role: 'user' }] });
    expect(noContent).toMatchObject({ status: 400, param: 'messages[0].content', code: 'missing_required_parameter' });
    const noModel = refusal(chatRequestSchema, { messages: chat.messages });
    expect(noModel).toMatchObject({ status: 400, param: 'model', code: 'missing_required_parameter' });
    const noPrompt = refusal(completionRequestSchema, { model: completion.model });
    expect(noPrompt).toMatchObject({ status: 400, param: 'prompt', code: 'missing_required_parameter' });
  });

  it('refuses a batch of prompts and the completion-only parameters it does not support', () => {
    expect(refusal(completionRequestSchema, { ...completion, prompt: ['a', 'b'] })).toMatchObject({
      status: 400,
      param: 'prompt',
    });
    expect(refusal(completionRequestSchema, { ...completion, echo: true })).toMatchObject({
      status: 400,
      param: 'echo',
    });
    expect(refusal(completionRequestSchema, { ...completion, max_tokens: 1000 })).toMatchObject({
      status: 400,
      param: 'max_tokens',
    });
  });

  it.each([null, [], 'x', 42, undefined])('refuses the body %j: not an object', (body) => {
    const error = refusal(chatRequestSchema, body);
    expect(error).toMatchObject({ status: 400, type: 'invalid_request_error', param: null });
    expect(error.message).toBe('The request body must be a JSON object.');
    expect(refusal(completionRequestSchema, body).status).toBe(400);
  });

  it('parses valid bodies and ignores unknown members', () => {
    const full = {
      ...chat,
      messages: [
        { role: 'developer', content: 'Be brief.' },
        { role: 'system', content: [{ type: 'text', text: 'Sys' }] },
        { role: 'user', content: 'Hi', name: 'ann' },
        { role: 'assistant', content: 'Hello' },
      ],
      max_tokens: 128,
      max_completion_tokens: 1,
      temperature: 2,
      top_p: 1,
      seed: 0xffffffff,
      stop: ['a', 'b', 'c', 'x'.repeat(32)],
      stream: true,
      stream_options: { include_usage: true },
      n: 1,
      user: 'u',
      presence_penalty: 0,
      frequency_penalty: 0,
      logprobs: false,
      tools: [],
      response_format: { type: 'text' },
      metadata: { anything: 1 },
      parallel_tool_calls: false,
    };
    const parsed = parseRequest(chatRequestSchema, full);
    expect(parsed).not.toHaveProperty('metadata');
    expect(parsed).not.toHaveProperty('parallel_tool_calls');
    expect(parsed).toMatchObject({ model: chat.model, max_tokens: 128, temperature: 2, stop: full.stop, n: 1 });
    expect(parsed.messages).toHaveLength(4);

    expect(parseRequest(chatRequestSchema, { ...chat, max_tokens: null, temperature: null, stop: null })).toEqual({
      ...chat,
      max_tokens: null,
      temperature: null,
      stop: null,
    });
    expect(parseRequest(chatRequestSchema, { ...chat, surprise: true })).toEqual(chat);
    expect(parseRequest(completionRequestSchema, { ...completion, prompt: ['one'], best_of: 3 })).toEqual({
      ...completion,
      prompt: ['one'],
    });
    expect(parseRequest(completionRequestSchema, { ...completion, stop: 'END', echo: false })).toEqual({
      ...completion,
      stop: 'END',
      echo: false,
    });
  });
});

describe('generateParams', () => {
  const req = (r: Partial<ChatRequest> = {}) => ({ model: 'm', ...r });
  const noSeed = () => {
    throw new Error('no random seed is needed');
  };

  it('decodes greedily at temperature 0 or absent, whatever the seed and top_p', () => {
    for (const temperature of [0, null, undefined]) {
      const params = generateParams(req({ temperature, seed: 7, top_p: 0.5 }), 'p', noSeed);
      expect(params).toEqual({ model: 'm', prompt: 'p', maxNewTokens: DEFAULT_MAX_TOKENS });
      expect(params).not.toHaveProperty('sampling');
    }
  });

  it("samples above temperature 0, with the request's seed or else a random one", () => {
    expect(generateParams(req({ temperature: 0.7, seed: 42 }), 'p', noSeed).sampling).toEqual({
      seed: 42,
      temperature: 0.7,
    });
    expect(generateParams(req({ temperature: 0.7, seed: 0 }), 'p', noSeed).sampling?.seed).toBe(0);
    expect(generateParams(req({ temperature: 1 }), 'p', () => 1234).sampling).toEqual({ seed: 1234, temperature: 1 });
    expect(generateParams(req({ temperature: 1, seed: null }), 'p', () => 99).sampling?.seed).toBe(99);
  });

  it('gives topP only below 1', () => {
    expect(generateParams(req({ temperature: 1, seed: 1, top_p: 1 }), 'p', noSeed).sampling).not.toHaveProperty('topP');
    expect(generateParams(req({ temperature: 1, seed: 1, top_p: 0.9 }), 'p', noSeed).sampling).toEqual({
      seed: 1,
      temperature: 1,
      topP: 0.9,
    });
  });

  it('passes stop strings as a list, and none when there are none', () => {
    expect(generateParams(req({ stop: 'END' }), 'p', noSeed).stop).toEqual(['END']);
    expect(generateParams(req({ stop: ['a', 'b'] }), 'p', noSeed).stop).toEqual(['a', 'b']);
    for (const stop of [null, undefined, []])
      expect(generateParams(req({ stop }), 'p', noSeed)).not.toHaveProperty('stop');
  });

  it('takes max_completion_tokens over max_tokens, and the default when neither is given', () => {
    expect(generateParams(req({ max_tokens: 10, max_completion_tokens: 20 }), 'p', noSeed).maxNewTokens).toBe(20);
    expect(generateParams(req({ max_tokens: 10 }), 'p', noSeed).maxNewTokens).toBe(10);
    expect(generateParams(req({ max_tokens: 10, max_completion_tokens: null }), 'p', noSeed).maxNewTokens).toBe(10);
    expect(generateParams(req(), 'p', noSeed).maxNewTokens).toBe(DEFAULT_MAX_TOKENS);
    expect(DEFAULT_MAX_TOKENS).toBe(64);
  });

  it('maps a parsed request end to end', () => {
    const parsed = parseRequest(chatRequestSchema, {
      ...chat,
      temperature: 0.5,
      top_p: 0.8,
      stop: '\n',
      max_tokens: 9,
    });
    expect(generateParams(parsed, 'User: Hello\nAssistant:', () => 5)).toEqual({
      model: chat.model,
      prompt: 'User: Hello\nAssistant:',
      maxNewTokens: 9,
      sampling: { seed: 5, temperature: 0.5, topP: 0.8 },
      stop: ['\n'],
    });
  });
});

describe('chatMessages', () => {
  it('joins text parts and maps developer messages to system ones', () => {
    const parsed = parseRequest(chatRequestSchema, {
      ...chat,
      messages: [
        { role: 'developer', content: 'Be brief.' },
        {
          role: 'system',
          content: [
            { type: 'text', text: 'You are ' },
            { type: 'text', text: 'kind.' },
          ],
        },
        { role: 'user', content: [{ type: 'text', text: 'Hi' }] },
        { role: 'assistant', content: 'Hello!' },
        { role: 'user', content: 'Bye', name: 'ann' },
      ],
    });
    expect(chatMessages(parsed)).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'system', content: 'You are kind.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Bye' },
    ]);
  });
});

describe('finishReason', () => {
  const result = (finish: GenerateResult['finish']) => ({ finish }) as GenerateResult;
  it("maps eos and stop to 'stop', and length to 'length'", () => {
    expect(finishReason(result('eos'))).toBe('stop');
    expect(finishReason(result('stop'))).toBe('stop');
    expect(finishReason(result('length'))).toBe('length');
  });
});
