/**
 * The two files of a batch job (docs/jobs.md, "Files"), both JSONL: one JSON object per line, lines separated by
 * "\n" (a final "\n" is allowed, an empty line is not).
 *
 *  - The **job file**, whose sha256 is the job's `inputHash`: one request per line, `{"custom_id", "params"}`, the
 *    params of `infer.generate` (protocol.ts), every line for the job's model and within its `maxTokens`.
 *  - A shard's **results file**, whose sha256 is its `resultsHash`: one line per request of the shard, in order,
 *    `{"custom_id", "result"}`, each result signed by the shard's miner for request id `<job id>:<line index>` over
 *    that line's params.
 *
 * Parsing refuses with a JobFileError naming the line (numbered from 1), so a person, a miner and a validator all
 * read the same sentence for the same bad file.
 */
import { z } from 'zod';
import { shardRange } from '../ledger/jobs.ts';
import { MAX_JOB_REQUESTS } from '../ledger/records.ts';
import {
  checkResult,
  generateParamsSchema,
  generateResultSchema,
  samplingSchema,
  type GenerateParams,
  type GenerateResult,
} from './protocol.ts';

export const MAX_CUSTOM_ID_CHARS = 64;
/**
 * What one results line may take, at most, for an honest miner: the signed result's fixed part, and per token its
 * id, its 16 candidates and its text. The client keeps every shard's results under the per-blob limit with it, and
 * a validator refuses results larger than it (docs/jobs.md, "Files").
 */
export const RESULT_LINE_BASE_BYTES = 4096;
export const RESULT_BYTES_PER_TOKEN = 400;
export const resultLineBound = (maxTokens: number): number =>
  RESULT_LINE_BASE_BYTES + RESULT_BYTES_PER_TOKEN * maxTokens;
/** The most bytes a job line can take: a 2,000-character prompt, stop strings and an id, all escaped. */
export const MAX_JOB_LINE_BYTES = 16 * 1024;

/** Strict at every level: a misspelt field ("max_tokens") is an error, not silently dropped. */
const strictParams = generateParamsSchema.extend({ sampling: samplingSchema.strict().optional() }).strict();
const customId = z.string().min(1).max(MAX_CUSTOM_ID_CHARS);
const jobLineSchema = z.strictObject({ custom_id: customId, params: strictParams });
const resultLineSchema = z.strictObject({ custom_id: customId, result: generateResultSchema });

export interface JobLine {
  custom_id: string;
  params: GenerateParams;
}

export interface ResultLine {
  custom_id: string;
  result: GenerateResult;
}

/** A file that is not what it should be; `line` is the offending line, numbered from 1 (null: the whole file). */
export class JobFileError extends Error {
  override name = 'JobFileError';
  constructor(
    readonly line: number | null,
    message: string,
  ) {
    super(line === null ? message : `line ${line}: ${message}`);
  }
}

/** What a job file must agree with: the job's model, and (once the job exists) its size and token limit. */
export interface JobTerms {
  model: string;
  maxTokens?: number;
  requests?: number;
}

/** The request id a job's line is answered under. */
export const jobRequestId = (jobId: string, index: number): string => `${jobId}:${index}`;

const encoder = new TextEncoder();

function linesOf(bytes: Uint8Array | string): string[] {
  let text: string;
  if (typeof bytes === 'string') text = bytes;
  else
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new JobFileError(null, 'the file is not UTF-8 text');
    }
  if (text === '' || text === '\n') throw new JobFileError(null, 'the file holds no lines');
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

function parseJson(text: string, line: number): unknown {
  if (text.trim() === '') throw new JobFileError(line, 'the line is empty');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new JobFileError(line, `not JSON (${(err as Error).message})`);
  }
}

function schemaProblem(error: z.ZodError): string {
  const issue = error.issues[0]!;
  return `${issue.path.join('.') || '(line)'}: ${issue.message}`;
}

/** Check the requests (parsed JSON values, or JSONL bytes) against the job's terms; returns them typed. */
export function checkJobLines(raw: readonly unknown[], terms: JobTerms): JobLine[] {
  if (raw.length === 0) throw new JobFileError(null, 'the job holds no requests');
  if (raw.length > MAX_JOB_REQUESTS)
    throw new JobFileError(null, `a job holds at most ${MAX_JOB_REQUESTS} requests; this one holds ${raw.length}`);
  if (terms.requests !== undefined && raw.length !== terms.requests)
    throw new JobFileError(null, `the file holds ${raw.length} requests; the job names ${terms.requests}`);
  const seen = new Map<string, number>();
  return raw.map((value, k) => {
    const line = k + 1;
    const parsed = jobLineSchema.safeParse(value);
    if (!parsed.success) throw new JobFileError(line, schemaProblem(parsed.error));
    const { custom_id, params } = parsed.data;
    if (params.model !== terms.model)
      throw new JobFileError(line, `asks for model ${params.model}; the job's model is ${terms.model}`);
    if (terms.maxTokens !== undefined && params.maxNewTokens > terms.maxTokens)
      throw new JobFileError(
        line,
        `asks for ${params.maxNewTokens} new tokens; the job allows at most ${terms.maxTokens}`,
      );
    const earlier = seen.get(custom_id);
    if (earlier !== undefined)
      throw new JobFileError(line, `custom_id ${JSON.stringify(custom_id)} repeats line ${earlier}`);
    seen.set(custom_id, line);
    return { custom_id, params };
  });
}

/** The requests of a job file (JSONL bytes or text), checked against the job's terms. */
export function parseJobFile(bytes: Uint8Array | string, terms: JobTerms): JobLine[] {
  return checkJobLines(
    linesOf(bytes).map((text, k) => parseJson(text, k + 1)),
    terms,
  );
}

/** The job file of `lines`: one compact JSON object per line, each line ending in "\n". */
export function jobFileBytes(lines: readonly JobLine[]): Uint8Array {
  return encoder.encode(lines.map((l) => `${JSON.stringify({ custom_id: l.custom_id, params: l.params })}\n`).join(''));
}

/** A shard's results file: one compact JSON object per line, each line ending in "\n". */
export function resultsFileBytes(lines: readonly ResultLine[]): Uint8Array {
  return encoder.encode(lines.map((l) => `${JSON.stringify({ custom_id: l.custom_id, result: l.result })}\n`).join(''));
}

/** What a shard's results must answer: the job, its model, the shard's miner, and every request of the job. */
export interface ResultsExpected {
  jobId: string;
  model: string;
  shards: number;
  shard: number;
  miner: string;
  /** The whole job file's requests (the shard's are picked by its range). */
  lines: readonly JobLine[];
}

/**
 * The results of a shard, checked line by line: one per request of the shard in order, each with that request's
 * custom_id, a result signed by the shard's miner for `<job>:<index>` over exactly that request's params, for the
 * job's model, not cancelled, whose tokens follow from its signed candidates (stage 1: checkResult). What no
 * miner can fake needs no model; whether the tokens are the model's is stage 2, the auditor's sample.
 */
export async function checkResultsFile(bytes: Uint8Array | string, expected: ResultsExpected): Promise<ResultLine[]> {
  const [start, end] = shardRange(expected.lines.length, expected.shards, expected.shard);
  const texts = linesOf(bytes);
  if (texts.length !== end - start)
    throw new JobFileError(
      null,
      `the results hold ${texts.length} lines; shard ${expected.shard} has ${end - start} requests`,
    );
  const out: ResultLine[] = [];
  for (const [k, text] of texts.entries()) {
    const line = k + 1;
    const index = start + k;
    const request = expected.lines[index]!;
    const parsed = resultLineSchema.safeParse(parseJson(text, line));
    if (!parsed.success) throw new JobFileError(line, schemaProblem(parsed.error));
    const { custom_id, result } = parsed.data;
    if (custom_id !== request.custom_id)
      throw new JobFileError(
        line,
        `custom_id ${JSON.stringify(custom_id)}; request ${index} is ${JSON.stringify(request.custom_id)}`,
      );
    if (result.model !== expected.model)
      throw new JobFileError(line, `the result is ${result.model}'s, not ${expected.model}'s`);
    if (result.finish === 'cancelled') throw new JobFileError(line, 'the result was cancelled');
    const problem = await checkResult(result, {
      miner: expected.miner,
      requestId: jobRequestId(expected.jobId, index),
      params: request.params,
    });
    if (problem) throw new JobFileError(line, problem);
    out.push({ custom_id, result });
  }
  return out;
}
