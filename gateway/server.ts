/**
 * The gateway's HTTP face (Fastify): OpenAI's `/v1/models`, `/v1/chat/completions` and `/v1/completions`, plain
 * and streamed (Server-Sent Events in OpenAI's chunk format, ending with `data: [DONE]`), and
 * `/v1/webtensor/results/{id}`, the miner's signed answer behind a completion. Every error has OpenAI's shape and
 * status. API keys, CORS, a body limit and a rate limit guard the door; the router (router.ts) picks the miners.
 * With `batch`, OpenAI's Files and Batch APIs too (files.ts, batches.ts): batches run as jobs on the ledger.
 */
import { createHash, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import cors from '@fastify/cors';
import multipart from '@fastify/multipart';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { NetworkConfig } from '../shared/ledger/config.ts';
import type { GenerateParams, GenerateResult } from '../shared/inference/protocol.ts';
import type { ChatTemplate } from './chat-template.ts';
import { registerBatchRoutes, type BatchService } from './batches.ts';
import { compileRequest, modelNotFound } from './compile.ts';
import { registerFileRoutes, type FileStore } from './files.ts';
import {
  ApiError,
  badRequest,
  chatChunk,
  chatCompletion,
  finishReason,
  textChunk,
  textCompletion,
  usageOf,
  webtensorOf,
  type CompletionMeta,
} from './openai.ts';
import type { MinerRouter } from './router.ts';
import { StopHoldback } from './stop-holdback.ts';

export interface GatewayInit {
  host: string;
  /** 0: any free port. */
  port: number;
  /** The network the gateway's node joined: its subnets name the models. */
  network: () => NetworkConfig | null;
  router: MinerRouter;
  templates: (model: string) => Promise<ChatTemplate>;
  /** Keys a request must bear (`Authorization: Bearer <key>`); none: the gateway is open. */
  apiKeys: readonly string[];
  /** Origins browser apps may call from (`*`: any). */
  corsOrigin: string;
  /** Requests per minute per API key (or per IP on an open gateway). */
  ratePerMinute: number;
  /** Largest request body, bytes. */
  bodyLimit: number;
  /** How long a request may take before 504. */
  deadlineMs: number;
  /** Called with every answer served (the audit samples them). */
  onAnswered?: (netuid: number, params: GenerateParams, result: GenerateResult) => void;
  /** The Batch API (files and batches); absent: the gateway answers live requests only. */
  batch?: { files: FileStore; batches: BatchService; maxFileBytes: number };
  /** What /v1/webtensor/status adds (the audit's counts). */
  status?: () => Record<string, unknown>;
  log?: Logger;
}

export interface Gateway {
  /** http://host:port/v1 */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Completions whose signed results are kept for /v1/webtensor/results (the oldest go first). */
export const RESULTS_KEPT = 1000;

interface Served {
  params: GenerateParams;
  result: GenerateResult;
  tried: { miner: string; reason: string }[];
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/** The gateway's Fastify app with every route, not listening yet (tests inject requests into it). */
export async function buildGateway(init: Omit<GatewayInit, 'host' | 'port'>): Promise<FastifyInstance> {
  const app = Fastify({ bodyLimit: init.bodyLimit, logger: false });
  const results = new Map<string, Served>();
  const keys = init.apiKeys.map(digest);

  await app.register(cors, {
    origin: init.corsOrigin === '*' ? '*' : init.corsOrigin.split(','),
    allowedHeaders: ['authorization', 'content-type', 'openai-organization', 'openai-project', 'x-stainless-*'],
    exposedHeaders: ['x-webtensor-miner', 'x-webtensor-request-id', 'retry-after'],
    maxAge: 600,
  });

  const bearer = (req: FastifyRequest) => /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? null;
  // Keys are compared by their sha256 in constant time.
  app.addHook('onRequest', async (req) => {
    if (keys.length === 0 || req.method === 'OPTIONS') return;
    const given = bearer(req);
    const ok = given !== null && keys.some((k) => timingSafeEqual(k, digest(given)));
    if (!ok)
      throw new ApiError(
        401,
        given === null
          ? "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'."
          : 'Incorrect API key provided.',
        'invalid_request_error',
        'invalid_api_key',
      );
  });

  await app.register(rateLimit, {
    max: init.ratePerMinute,
    timeWindow: 60_000,
    keyGenerator: (req) => bearer(req) ?? req.ip,
    errorResponseBuilder: (_req, ctx) =>
      Object.assign(
        new ApiError(
          429,
          `Rate limit reached: ${ctx.max} requests per minute. Retry in ${Math.ceil(ctx.ttl / 1000)} s.`,
          'requests',
          'rate_limit_exceeded',
          null,
          Math.ceil(ctx.ttl / 1000),
        ),
        { statusCode: 429 },
      ),
  });

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
    const api =
      err instanceof ApiError
        ? err
        : err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
          ? new ApiError(
              413,
              `The request body is over ${init.bodyLimit} bytes.`,
              'invalid_request_error',
              'request_too_large',
            )
          : err.code?.startsWith('FST_ERR_CTP_') || (err.statusCode === 400 && err instanceof SyntaxError)
            ? badRequest(
                `We could not parse the JSON body of your request (${err.message}). Send JSON with Content-Type: application/json.`,
                null,
                'invalid_json',
              )
            : new ApiError(500, 'The gateway failed to handle the request.', 'server_error');
    if (api.status >= 500 && api.status !== 503 && api.status !== 504)
      init.log?.error({ err: err.message, url: req.url }, 'gateway request failed');
    if (api.retryAfter !== null) void reply.header('retry-after', String(api.retryAfter));
    return reply.code(api.status).send(api.body());
  });

  app.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send(new ApiError(404, `Unknown request URL: ${req.method} ${req.url}.`, 'invalid_request_error').body()),
  );

  const created = Math.floor(Date.now() / 1000);
  const served = () => (init.network()?.subnets ?? []).filter((s) => init.router.hasMiners(s));
  const modelObject = (id: string) => ({ id, object: 'model', created, owned_by: 'webtensor' });

  app.get('/v1/models', async () => ({ object: 'list', data: served().map((s) => modelObject(s.model)) }));
  app.get<{ Params: { model: string } }>('/v1/models/*', async (req) => {
    const id = (req.params as Record<string, string>)['*']!;
    if (!served().some((s) => s.model === id)) throw modelNotFound(id);
    return modelObject(id);
  });

  app.get<{ Params: { id: string } }>('/v1/webtensor/results/:id', async (req) => {
    const found = results.get(req.params.id);
    if (!found)
      throw new ApiError(
        404,
        `No result ${req.params.id} is kept here (the last ${RESULTS_KEPT} are).`,
        'invalid_request_error',
      );
    return {
      id: req.params.id,
      object: 'webtensor.result',
      params: found.params,
      result: found.result,
      tried: found.tried,
    };
  });

  app.get('/v1/webtensor/status', async () => ({
    object: 'webtensor.status',
    queued: init.router.queued,
    miners: init.router.snapshot(),
    ...init.status?.(),
  }));

  const complete = async (
    kind: 'chat' | 'text',
    req: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply | undefined> => {
    const { subnet, params, stream } = await compileRequest(kind, req.body, {
      network: init.network,
      templates: init.templates,
      randomSeed: () => randomInt(0, 0xffffffff),
    });
    const meta: CompletionMeta = {
      id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`,
      created: Math.floor(Date.now() / 1000),
      model: params.model,
    };
    // The caller going away cancels the miners' work.
    const gone = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) gone.abort();
    });
    const deadline = Date.now() + init.deadlineMs;
    const keep = (result: GenerateResult, tried: Served['tried']) => {
      results.set(meta.id, { params, result, tried });
      if (results.size > RESULTS_KEPT) results.delete(results.keys().next().value!);
      init.onAnswered?.(subnet.netuid, params, result);
    };

    if (!stream) {
      const { result, tried } = await init.router.generate(subnet, params, { signal: gone.signal, deadline });
      keep(result, tried);
      return reply
        .header('x-webtensor-miner', result.miner)
        .header('x-webtensor-request-id', result.requestId)
        .send(kind === 'chat' ? chatCompletion(meta, result) : textCompletion(meta, result));
    }

    // Streaming: headers go out with the first text (so an error before it still gets its status), then chunks.
    const holdback = new StopHoldback(params.stop ?? []);
    const raw = reply.raw;
    const write = (o: unknown) => raw.write(`data: ${JSON.stringify(o)}\n\n`);
    const piece = (text: string, finish: string | null) =>
      kind === 'chat' ? chatChunk(meta, { content: text }, finish) : textChunk(meta, text, finish);
    let opened = false;
    const open = (miner: string) => {
      if (opened) return;
      opened = true;
      reply.hijack();
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-webtensor-miner': miner,
        ...headersSet(reply),
      });
      if (kind === 'chat') write(chatChunk(meta, { role: 'assistant', content: '' }, null));
    };
    try {
      const { result, tried } = await init.router.generate(subnet, params, {
        signal: gone.signal,
        deadline,
        onText: (text, miner) => {
          open(miner);
          const safe = holdback.push(text);
          if (safe) write(piece(safe, null));
        },
      });
      open(result.miner);
      const rest = holdback.end(result.text);
      if (rest) write(piece(rest, null));
      const last = piece('', finishReason(result)) as ReturnType<typeof piece> & Record<string, unknown>;
      if (kind === 'chat') (last.choices[0] as { delta: object }).delta = {};
      write({ ...last, webtensor: webtensorOf(meta.id, result) });
      if (stream.usage) write({ ...meta, object: last.object, choices: [], usage: usageOf(result) });
      raw.end('data: [DONE]\n\n');
      keep(result, tried);
    } catch (err) {
      if (!opened) throw err;
      // Mid-stream: the status is gone; OpenAI's clients read an error event.
      const api = err instanceof ApiError ? err : new ApiError(500, (err as Error).message, 'server_error');
      if (!raw.destroyed) raw.end(`data: ${JSON.stringify(api.body())}\n\n`);
    }
    return undefined;
  };

  app.post('/v1/chat/completions', (req, reply) => complete('chat', req, reply));
  app.post('/v1/completions', (req, reply) => complete('text', req, reply));

  if (init.batch) {
    await app.register(multipart);
    registerFileRoutes(app, {
      files: init.batch.files,
      maxFileBytes: init.batch.maxFileBytes,
      compile: { network: init.network, templates: init.templates, randomSeed: () => randomInt(0, 0xffffffff) },
    });
    registerBatchRoutes(app, init.batch.batches);
  }
  return app;
}

export async function startGateway(init: GatewayInit): Promise<Gateway> {
  const app = await buildGateway(init);
  await app.listen({ host: init.host, port: init.port });
  const port = (app.server.address() as { port: number }).port;
  return { url: `http://${init.host}:${port}/v1`, port, close: () => app.close() };
}

/** The headers plugins set on the reply (CORS, rate limit), for a response written by hand. */
function headersSet(reply: FastifyReply): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) out[k] = String(v);
  return out;
}
