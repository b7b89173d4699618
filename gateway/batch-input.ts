/**
 * An OpenAI batch input file compiled into a job file (docs/jobs.md, "Files"). Each line of the upload is one
 * request as OpenAI's Batch API takes it, `{"custom_id", "method": "POST", "url", "body"}`, with `url`
 * `/v1/chat/completions` or `/v1/completions`; its body becomes generation params by exactly the steps the live
 * endpoint takes (compile.ts: the same checks, chat template and prompt limit), and the line a job line
 * `{"custom_id", "params"}`. Any bad line refuses the whole file with a 400 naming it (numbered from 1).
 */
import { MAX_CUSTOM_ID_CHARS, type JobLine } from '../shared/inference/job-files.ts';
import { MAX_JOB_REQUESTS } from '../shared/ledger/records.ts';
import { z } from 'zod';
import { compileRequest, type CompileContext, type RequestKind } from './compile.ts';
import { ApiError, badRequest } from './openai.ts';

/** A refusal of one line of an uploaded file: OpenAI's error object, with the line (from 1) added. */
export class LineError extends ApiError {
  constructor(
    readonly line: number,
    message: string,
    code: string | null,
    param: string | null,
  ) {
    super(400, `Line ${line} of the file: ${message}`, 'invalid_request_error', code, param);
  }

  override body() {
    const { error } = super.body();
    return { error: { ...error, line: this.line } };
  }
}

/** A compiled batch file: its job lines, and which endpoint each line asked ('c': chat, 't': text completion). */
export interface CompiledBatch {
  lines: JobLine[];
  kinds: string;
  model: string;
  /** The largest `max_tokens` of its lines: the job's `maxTokens`. */
  maxTokens: number;
}

const URLS: Record<string, RequestKind> = { '/v1/chat/completions': 'chat', '/v1/completions': 'text' };

const lineSchema = z.object({
  custom_id: z.string().min(1).max(MAX_CUSTOM_ID_CHARS),
  method: z.literal('POST', { error: 'must be POST' }),
  url: z.enum(Object.keys(URLS) as [string, ...string[]], {
    error: 'must be /v1/chat/completions or /v1/completions (the endpoints this network serves)',
  }),
  body: z.record(z.string(), z.unknown(), { error: 'must be the request body, a JSON object' }),
});

/** The lines of an uploaded file: UTF-8 text, lines split on "\n" ("\r\n" too), a final newline allowed. */
function textLines(bytes: Uint8Array): string[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw badRequest('The file is not UTF-8 text. A batch file is JSONL: one JSON object per line.', 'file');
  }
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.at(-1) === '') lines.pop();
  if (lines.length === 0)
    throw badRequest('The file holds no requests. A batch file is JSONL: one request per line.', 'file');
  if (lines.length > MAX_JOB_REQUESTS)
    throw badRequest(`The file holds ${lines.length} requests; a batch holds at most ${MAX_JOB_REQUESTS}.`, 'file');
  return lines;
}

/**
 * Compile an uploaded batch file; throws LineError naming the first bad line (not JSON, not a batch line, a body
 * the live endpoint would refuse, a streamed request, a custom_id used twice, a model other than the first
 * line's), or a 400 for the file as a whole.
 */
export async function compileBatchFile(bytes: Uint8Array, ctx: CompileContext): Promise<CompiledBatch> {
  const texts = textLines(bytes);
  const lines: JobLine[] = [];
  let kinds = '';
  let maxTokens = 1;
  const seen = new Map<string, number>();
  for (const [k, text] of texts.entries()) {
    const n = k + 1;
    if (text.trim() === '') throw new LineError(n, 'the line is empty.', 'invalid_json', null);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new LineError(n, `not JSON (${(err as Error).message}).`, 'invalid_json', null);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new LineError(n, 'a line must be a JSON object {custom_id, method, url, body}.', 'invalid_value', null);
    const parsed = lineSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const param = issue.path.join('.') || null;
      const missing = param !== null && !(param.split('.')[0]! in value);
      throw new LineError(
        n,
        missing ? `missing '${param}'.` : `'${param}' ${issue.message}.`,
        missing ? 'missing_required_parameter' : 'invalid_value',
        param,
      );
    }
    const { custom_id, url, body } = parsed.data;
    const earlier = seen.get(custom_id);
    if (earlier !== undefined)
      throw new LineError(
        n,
        `custom_id '${custom_id}' is used by line ${earlier} too.`,
        'duplicate_custom_id',
        'custom_id',
      );
    seen.set(custom_id, n);
    const kind = URLS[url]!;
    let params;
    try {
      const compiled = await compileRequest(kind, body, ctx);
      if (compiled.stream) throw badRequest('streaming is not supported in a batch.', 'stream', 'invalid_value');
      params = compiled.params;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      throw new LineError(n, err.message, err.code, err.param === null ? 'body' : `body.${err.param}`);
    }
    if (lines.length > 0 && params.model !== lines[0]!.params.model)
      throw new LineError(
        n,
        `asks for model ${params.model}; line 1 asks for ${lines[0]!.params.model}, and a batch is for one model.`,
        'invalid_value',
        'body.model',
      );
    lines.push({ custom_id, params });
    kinds += kind === 'chat' ? 'c' : 't';
    maxTokens = Math.max(maxTokens, params.maxNewTokens);
  }
  return { lines, kinds, model: lines[0]!.params.model, maxTokens };
}
