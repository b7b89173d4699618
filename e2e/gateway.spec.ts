/**
 * The OpenAI-compatible gateway against a real network: a relay, two headless miners serving
 * webtensor/tiny-llama (child processes, real inference) and the gateway (`npm run gateway`, a child process),
 * called with the official `openai` package. Models, chat and legacy completions plain and streamed (the same
 * text either way at temperature 0), stop strings, seeds, the signed result behind a completion, every error
 * OpenAI clients expect, 8 concurrent requests spread over both miners, a cancelled stream cancelling the
 * miner's work, a stream that survives its miner being killed, 503 once no miner is left, and 504 when the only
 * miner left takes requests and never answers.
 */
import { expect, test } from '@playwright/test';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { checkResult, type GenerateParams } from '../shared/inference/protocol.ts';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { Processes } from './support/processes.ts';

const relay = new RelayProcess(9740, 9741, undefined, ['--network', 'test']);
const MINER_PORTS = [9742, 9743];
const GATEWAY_PORT = 9745;
const MODEL = 'webtensor/tiny-llama';
const KEY = 'test-key-aaaaaaaa';
const BURST_KEY = 'test-key-bbbbbbbb';
const RATE = 60;

const root = mkdtempSync(join(tmpdir(), 'gateway-e2e-'));
const processes = new Processes(root, () => relay.healthUrl);
/** The miners started, in order (tests kill some). */
const miners: ChildProcess[] = [];
const base = `http://127.0.0.1:${GATEWAY_PORT}/v1`;
const openai = new OpenAI({ baseURL: base, apiKey: KEY, maxRetries: 0, timeout: 60_000 });

test.describe.configure({ mode: 'serial' });
test.setTimeout(240_000);

interface MinerStatus {
  peerId: string;
  uid: number | null;
  model: string | null;
}
// (Bounded: a miner that stops answering must show as null, not hang the poll past its timeout.)
const statusOf = (port: number): Promise<MinerStatus | null> =>
  fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(5000) })
    .then((r) => r.json() as Promise<MinerStatus>)
    .catch(() => null);

test.beforeAll(async () => {
  await relay.start();
  for (const [k, port] of MINER_PORTS.entries())
    miners.push(processes.node(`miner-${k}`, port, '--role', 'miner', '--model', MODEL));
  processes.start('gateway', [
    'gateway/main.ts',
    ...['--port', String(GATEWAY_PORT), '--relay', relay.healthUrl, '--data', join(root, 'gateway')],
    ...['--api-key', KEY, '--api-key', BURST_KEY, '--rate-limit', String(RATE), '--timeout', '30'],
  ]);
  try {
    // Both miners registered, and the gateway lists the model.
    await expect
      .poll(
        async () =>
          (await Promise.all(MINER_PORTS.map(statusOf))).every((s) => s?.uid !== null && s?.uid !== undefined),
        {
          timeout: 120_000,
        },
      )
      .toBe(true);
    await expect
      .poll(async () => (await openai.models.list().catch(() => ({ data: [] }))).data.map((m) => m.id), {
        timeout: 60_000,
      })
      .toContain(MODEL);
  } catch (err) {
    // (afterEach does not run when beforeAll fails.)
    console.log(`--- miners' status: ${JSON.stringify(await Promise.all(MINER_PORTS.map(statusOf)))}`);
    processes.printLogs();
    throw err;
  }
});

test.afterAll(async () => {
  await processes.stopAll();
  await relay.stop();
});

// Playwright requires an object pattern for the fixtures, even when none are used.
// eslint-disable-next-line no-empty-pattern
test.afterEach(async ({}, info) => {
  if (info.status !== info.expectedStatus) processes.printLogs();
});

/** A prompt the model does not end before 128 tokens (tiny-llama's weights are random: some prompts end early). */
async function longPrompt(): Promise<string> {
  for (const prompt of ['A long story:', 'The dragon said', 'Once upon a time', 'Tell me', 'Hello', 'x y z']) {
    const r = await openai.completions.create({ model: MODEL, prompt, max_tokens: 128 });
    if (r.choices[0]!.finish_reason === 'length') return prompt;
  }
  throw new Error('every candidate prompt ended before 128 tokens');
}

const minerIds = async () => (await Promise.all(MINER_PORTS.map(statusOf))).map((s) => s?.peerId);

test('lists the model, chats and completes, streamed or not, with the same text at temperature 0', async () => {
  const models = await openai.models.list();
  expect(models.data).toEqual([expect.objectContaining({ id: MODEL, object: 'model', owned_by: 'webtensor' })]);
  expect((await openai.models.retrieve(MODEL)).id).toBe(MODEL);

  const messages = [
    { role: 'system' as const, content: 'You tell short stories.' },
    { role: 'user' as const, content: 'Tell me about a cat.' },
  ];
  const { data: chat, response } = await openai.chat.completions
    .create({ model: MODEL, messages, max_tokens: 24 })
    .withResponse();
  expect(chat.object).toBe('chat.completion');
  expect(chat.choices[0]!.message).toMatchObject({ role: 'assistant', content: expect.any(String) });
  expect(chat.choices[0]!.message.content!.length).toBeGreaterThan(0);
  expect(chat.usage).toMatchObject({ completion_tokens: 24, total_tokens: chat.usage!.prompt_tokens + 24 });
  expect(chat.choices[0]!.finish_reason).toBe('length');
  expect(await minerIds()).toContain(response.headers.get('x-webtensor-miner'));

  // The signed result behind it: signed by that miner, over exactly the params the gateway asked.
  const kept = (await (
    await fetch(`${base}/webtensor/results/${chat.id}`, { headers: { authorization: `Bearer ${KEY}` } })
  ).json()) as { params: GenerateParams; result: { miner: string; requestId: string; text: string } };
  expect(kept.result.text).toBe(chat.choices[0]!.message.content);
  expect(kept.params).toMatchObject({ model: MODEL, maxNewTokens: 24 });
  expect(kept.params.prompt).toBe('You tell short stories.\n\nUser: Tell me about a cat.\nAssistant:');
  expect(
    await checkResult(kept.result, { miner: kept.result.miner, requestId: kept.result.requestId, params: kept.params }),
  ).toBeNull();

  // Streamed: role first, content deltas, a finish reason, usage on request; the same text.
  const stream = await openai.chat.completions.create({
    model: MODEL,
    messages,
    max_tokens: 24,
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
  const streamed = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  expect(streamed).toBe(chat.choices[0]!.message.content);
  expect(chunks.filter((c) => c.choices[0]?.finish_reason).map((c) => c.choices[0]!.finish_reason)).toEqual(['length']);
  expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: 24 });
  expect(new Set(chunks.map((c) => c.id)).size).toBe(1);

  // Legacy completions, plain and streamed.
  const plain = await openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 16 });
  expect(plain.object).toBe('text_completion');
  let text = '';
  for await (const c of await openai.completions.create({
    model: MODEL,
    prompt: 'Once upon a time',
    max_tokens: 16,
    stream: true,
  }))
    text += c.choices[0]?.text ?? '';
  expect(text).toBe(plain.choices[0]!.text);
});

test('stop strings end the text before them, streamed too; a seed makes sampling repeatable', async () => {
  const prompt = 'Once upon a time';
  const full = (await openai.completions.create({ model: MODEL, prompt, max_tokens: 32 })).choices[0]!.text;
  // A stop string from the middle of the greedy text.
  const stop = full
    .slice(Math.floor(full.length / 2))
    .trim()
    .slice(0, 3);
  expect(stop.length).toBeGreaterThan(0);
  const cut = full.slice(0, full.indexOf(stop));
  const stopped = await openai.completions.create({ model: MODEL, prompt, max_tokens: 32, stop });
  expect(stopped.choices[0]).toMatchObject({ text: cut, finish_reason: 'stop' });
  let text = '';
  for await (const c of await openai.completions.create({ model: MODEL, prompt, max_tokens: 32, stop, stream: true }))
    text += c.choices[0]?.text ?? '';
  expect(text).toBe(cut);

  const sampled = (seed: number) =>
    openai.completions
      .create({ model: MODEL, prompt, max_tokens: 16, temperature: 0.9, top_p: 0.95, seed })
      .then((r) => r.choices[0]!.text);
  const [a, b, c] = [await sampled(42), await sampled(42), await sampled(7)];
  expect(b).toBe(a);
  expect([a, c]).not.toEqual([full.slice(0, a.length), full.slice(0, c.length)]);
});

test('errors have OpenAI’s shape and status', async () => {
  const fail = (p: Promise<unknown>) =>
    p.then(() => null).catch((e: unknown) => e as InstanceType<typeof OpenAI.APIError>);

  const tooMany = await fail(openai.completions.create({ model: MODEL, prompt: 'x', max_tokens: 1000 }));
  expect(tooMany).toBeInstanceOf(OpenAI.BadRequestError);
  expect(tooMany).toMatchObject({ status: 400, param: 'max_tokens', type: 'invalid_request_error' });

  const noMessages = await fail(openai.chat.completions.create({ model: MODEL, messages: [] }));
  expect(noMessages).toMatchObject({ status: 400, param: 'messages' });

  const unknown = await fail(
    openai.chat.completions.create({ model: 'nobody/nothing', messages: [{ role: 'user', content: 'hi' }] }),
  );
  expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
  expect(unknown).toMatchObject({ status: 404, code: 'model_not_found', param: 'model' });
  expect(await fail(openai.models.retrieve('nobody/nothing'))).toBeInstanceOf(OpenAI.NotFoundError);

  const wrongKey = await fail(new OpenAI({ baseURL: base, apiKey: 'not-a-key-at-all', maxRetries: 0 }).models.list());
  expect(wrongKey).toBeInstanceOf(OpenAI.AuthenticationError);
  expect(wrongKey).toMatchObject({ status: 401, code: 'invalid_api_key' });

  // What the SDK cannot send: malformed JSON, a body over the limit.
  const post = (body: string) =>
    fetch(`${base}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body,
    });
  const malformed = await post('{"model": ');
  expect(malformed.status).toBe(400);
  expect(await malformed.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_json' } });
  const huge = await post(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x'.repeat(300_000) }] }));
  expect(huge.status).toBe(413);
  expect(await huge.json()).toMatchObject({ error: { code: 'request_too_large' } });
  const longPrompt = await fail(
    openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x'.repeat(5000) }] }),
  );
  expect(longPrompt).toMatchObject({ status: 400, param: 'messages', code: 'context_length_exceeded' });

  // The rate limit is per key: one key's burst leaves the other's requests alone.
  const burst = new OpenAI({ baseURL: base, apiKey: BURST_KEY, maxRetries: 0 });
  const statuses = await Promise.all(
    Array.from({ length: RATE + 1 }, () =>
      burst.models
        .list()
        .then(() => 200)
        .catch((e: { status: number }) => e.status),
    ),
  );
  expect(statuses.filter((s) => s === 429)).toHaveLength(1);
  const limited = await fail(burst.models.list());
  expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
  expect(Number((limited as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after'))).toBeGreaterThan(0);
  expect((await openai.models.list()).data).toHaveLength(1);

  // CORS for browser apps: a preflight from any origin is allowed and exposes the miner header.
  const preflight = await fetch(`${base}/chat/completions`, {
    method: 'OPTIONS',
    headers: {
      origin: 'https://app.example',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type',
    },
  });
  expect(preflight.status).toBe(204);
  expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
});

test('8 concurrent requests all succeed, spread over both miners', async () => {
  const answers = await Promise.all(
    Array.from({ length: 8 }, (_, k) =>
      openai.chat.completions
        .create({ model: MODEL, messages: [{ role: 'user', content: `Story number ${k}` }], max_tokens: 16 })
        .withResponse(),
    ),
  );
  for (const { data } of answers) expect(data.choices[0]!.message.content!.length).toBeGreaterThan(0);
  const used = new Set(answers.map(({ response }) => response.headers.get('x-webtensor-miner')));
  expect([...used].sort()).toEqual((await minerIds()).sort());
});

test('a client that leaves cancels the miner’s work', async () => {
  const prompt = await longPrompt();
  const controller = new AbortController();
  const { data: stream, response } = await openai.completions
    .create({ model: MODEL, prompt, max_tokens: 128, stream: true }, { signal: controller.signal })
    .withResponse();
  const miner = response.headers.get('x-webtensor-miner')!;
  const port = MINER_PORTS[(await minerIds()).indexOf(miner)]!;
  // Leave after the first chunk.
  await stream[Symbol.asyncIterator]().next();
  controller.abort();
  await expect
    .poll(
      async () => {
        const s = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as {
          serving: { lastRequest: { finish: string } | null };
        };
        return s.serving.lastRequest?.finish;
      },
      { timeout: 20_000 },
    )
    .toBe('cancelled');
});

test('a stream survives its miner being killed: the other miner continues it with the same text', async () => {
  const prompt = await longPrompt();
  const whole = (await openai.completions.create({ model: MODEL, prompt, max_tokens: 128 })).choices[0]!.text;
  const { data: stream, response } = await openai.completions
    .create({ model: MODEL, prompt, max_tokens: 128, stream: true })
    .withResponse();
  const first = response.headers.get('x-webtensor-miner')!;
  const victim = miners[(await minerIds()).indexOf(first)]!;
  let text = '';
  let killed = false;
  let last = null as { webtensor?: { miner: string } } | null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.text ?? '';
    last = chunk as unknown as typeof last;
    if (!killed && text.length > 0) {
      victim.kill('SIGKILL');
      killed = true;
    }
  }
  expect(text).toBe(whole);
  expect(last?.webtensor?.miner).not.toBe(first);
});

test('with no miner left, a known model answers 503 with Retry-After', async () => {
  for (const m of miners) m.kill('SIGKILL');
  const failed = await openai.chat.completions
    .create({ model: MODEL, messages: [{ role: 'user', content: 'anyone?' }] })
    .then(() => null)
    .catch((e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
  expect(failed).toBeInstanceOf(OpenAI.InternalServerError);
  expect(failed).toMatchObject({ status: 503 });
  expect(Number(failed!.headers?.get('retry-after'))).toBeGreaterThan(0);
});

test('a miner that never answers: 504 once the deadline passes', async () => {
  // A miner that takes requests and holds them unanswered (test networks only: --fault drop).
  const port = 9744;
  miners.push(processes.node('dropper', port, '--role', 'miner', '--model', MODEL, '--fault', 'drop'));
  await expect.poll(async () => (await statusOf(port))?.uid ?? null, { timeout: 120_000 }).not.toBeNull();
  // A second gateway whose deadline (5 s) comes before its router gives up on a silent miner (20 s).
  processes.start('gateway-2', [
    'gateway/main.ts',
    ...['--port', String(GATEWAY_PORT + 1), '--relay', relay.healthUrl, '--data', join(root, 'gateway-2')],
    ...['--timeout', '5'],
  ]);
  const quick = new OpenAI({ baseURL: `http://127.0.0.1:${GATEWAY_PORT + 1}/v1`, apiKey: 'open', maxRetries: 0 });
  // A gateway process takes seconds to start (tsx compiles it), more on a busy machine: the default 5 s is not enough.
  await expect
    .poll(async () => (await quick.models.list().catch(() => ({ data: [] }))).data.length, { timeout: 60_000 })
    .toBe(1);
  // Once its replay has the silent miner registered and it holds a connection to it (else, with the others dead,
  // every miner it knows fails at once: 503).
  const dropper = (await statusOf(port))!.peerId;
  const knows = () =>
    fetch(`http://127.0.0.1:${GATEWAY_PORT + 1}/v1/webtensor/status`)
      .then((r) => r.json() as Promise<{ peers: string[]; candidates: Record<string, string[]> }>)
      .then((s) => s.peers.includes(dropper) && (s.candidates[MODEL] ?? []).includes(dropper))
      .catch(() => false);
  await expect.poll(knows, { timeout: 60_000 }).toBe(true);
  const failed = await quick.chat.completions
    .create({ model: MODEL, messages: [{ role: 'user', content: 'anyone?' }] })
    .then(() => null)
    .catch((e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
  expect(failed, failed?.message).toMatchObject({ status: 504, code: 'timeout' });
});
