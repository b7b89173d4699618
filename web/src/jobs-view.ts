/**
 * What the Jobs page and `window.webtensor.jobs` share (docs/jobs.md): reading a request file (the job-file format,
 * or OpenAI batch lines for `/v1/completions` compiled into it), a job's status with amounts as decimal strings,
 * and each shard's history as this tab saw it (a shard that went back to open: a failed audit or a lapsed claim).
 */
import type { JobClient, JobStatus } from '../../core/services/job-client.ts';
import { Store, type ReadableStore } from '../../core/store.ts';
import { checkJobLines, JobFileError, parseJobFile, type JobLine } from '../../shared/inference/job-files.ts';

/** The body fields of an OpenAI `/v1/completions` batch line that compile into a job line. */
const OPENAI_BODY_FIELDS = new Set(['model', 'prompt', 'max_tokens', 'temperature', 'seed', 'top_p', 'stop']);
/** OpenAI's default `max_tokens` for completions. */
const OPENAI_DEFAULT_MAX_TOKENS = 16;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An OpenAI batch line (`{custom_id, method, url, body}`) rather than a job line (`{custom_id, params}`). */
const isOpenAiLine = (v: unknown): v is Record<string, unknown> =>
  isObject(v) && 'body' in v && 'url' in v && !('params' in v);

/** One OpenAI `/v1/completions` batch line as a job line for `model` (line numbered from 1, for errors). */
function compileOpenAiLine(v: Record<string, unknown>, line: number, model: string): unknown {
  if (v['url'] !== '/v1/completions')
    throw new JobFileError(
      line,
      `only /v1/completions batch lines can be compiled into a job; this one is for ${JSON.stringify(v['url'])}`,
    );
  const body = v['body'];
  if (!isObject(body)) throw new JobFileError(line, 'body: expected an object');
  for (const key of Object.keys(body))
    if (!OPENAI_BODY_FIELDS.has(key))
      throw new JobFileError(line, `body.${key} is not supported (only ${[...OPENAI_BODY_FIELDS].join(', ')})`);
  const temperature = body['temperature'];
  const sampled = typeof temperature === 'number' ? temperature > 0 : temperature !== undefined;
  const stop = body['stop'];
  return {
    custom_id: v['custom_id'],
    params: {
      model: body['model'] ?? model,
      prompt: body['prompt'],
      maxNewTokens: body['max_tokens'] ?? OPENAI_DEFAULT_MAX_TOKENS,
      // temperature 0 (or none) is greedy; a sampled line without a seed gets seed 0, so it is reproducible.
      ...(sampled
        ? {
            sampling: {
              seed: body['seed'] ?? 0,
              temperature,
              ...(body['top_p'] !== undefined ? { topP: body['top_p'] } : {}),
            },
          }
        : {}),
      ...(stop !== undefined && stop !== null ? { stop: typeof stop === 'string' ? [stop] : stop } : {}),
    },
  };
}

/**
 * A request file's text as what `JobClient.open` takes: the text itself when it is a job file (the client checks
 * it, naming the line), or its lines as job-line values when it holds OpenAI batch lines, each compiled. Throws
 * JobFileError (naming the line) for a batch line that cannot be compiled.
 */
export function jobRequests(text: string, model: string): string | unknown[] {
  const texts = text.split('\n');
  if (texts.at(-1) === '') texts.pop();
  const values: unknown[] = [];
  for (const t of texts) {
    try {
      values.push(JSON.parse(t));
    } catch {
      return text; // not JSON on some line: the job file's parser says which
    }
  }
  if (!values.some(isOpenAiLine)) return text;
  return values.map((v, k) => (isOpenAiLine(v) ? compileOpenAiLine(v, k + 1, model) : v));
}

/** The requests of a request file, checked as `JobClient.open` checks them (throws JobFileError naming the line). */
export function checkRequests(text: string, model: string): JobLine[] {
  const requests = jobRequests(text, model);
  return typeof requests === 'string' ? parseJobFile(requests, { model }) : checkJobLines(requests, { model });
}

/** What this tab saw a shard do that its state no longer shows. */
export interface ShardEvents {
  /** Results published, then failed by an audit: the miner's bond destroyed, the shard reopened. */
  failedAudits: number;
  /** Claims that lapsed without results: the bond destroyed, the shard reopened. */
  lapsedClaims: number;
}

/** Job id → per shard, what happened to it. */
export type JobHistory = Readonly<Record<string, readonly ShardEvents[]>>;

const histories = new WeakMap<JobClient, ReadableStore<JobHistory>>();

/**
 * What each of this key's shards went through, as this tab's replays showed it (a shard back to `open` after a
 * result failed its audit, or after a claim lapsed). One store per client, following it from the first call on.
 */
export function jobHistory(client: JobClient): ReadableStore<JobHistory> {
  let store = histories.get(client);
  if (store) return store;
  const history = new Store<JobHistory>({});
  const last = new Map<string, JobStatus['shards']>();
  const follow = (jobs: readonly JobStatus[]) => {
    let next: Record<string, ShardEvents[]> | null = null;
    for (const job of jobs) {
      const before = last.get(job.id);
      last.set(job.id, job.shards);
      if (!before) continue;
      for (const s of job.shards) {
        const was = before[s.shard]?.status;
        if (s.status !== 'open' || (was !== 'result' && was !== 'claimed')) continue;
        next ??= { ...(history.get() as Record<string, ShardEvents[]>) };
        const events = [...(next[job.id] ?? job.shards.map(() => ({ failedAudits: 0, lapsedClaims: 0 })))];
        const e = events[s.shard]!;
        events[s.shard] =
          was === 'result' ? { ...e, failedAudits: e.failedAudits + 1 } : { ...e, lapsedClaims: e.lapsedClaims + 1 };
        next[job.id] = events;
      }
    }
    if (next) history.set(next);
  };
  follow(client.state.get().jobs);
  client.state.subscribe((s) => follow(s.jobs));
  store = history;
  histories.set(client, store);
  return store;
}

/** A job's status as plain JSON: amounts in rao as decimal strings, each shard with what this tab saw it do. */
export interface JobView extends Omit<JobStatus, 'price' | 'deposit' | 'paid' | 'refunded' | 'forfeited' | 'shards'> {
  price: string;
  deposit: string;
  paid: string;
  refunded: string;
  forfeited: string;
  shards: (JobStatus['shards'][number] & ShardEvents)[];
}

export function jobView(job: JobStatus, history: JobHistory): JobView {
  const events = history[job.id];
  return {
    ...job,
    price: job.price.toString(),
    deposit: job.deposit.toString(),
    paid: job.paid.toString(),
    refunded: job.refunded.toString(),
    forfeited: job.forfeited.toString(),
    shards: job.shards.map((s) => ({ ...s, ...(events?.[s.shard] ?? { failedAudits: 0, lapsedClaims: 0 }) })),
  };
}
