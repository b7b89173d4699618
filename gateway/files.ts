/**
 * OpenAI's Files API, as far as batches need it: `POST /v1/files` (multipart/form-data with `purpose=batch` and
 * `file`, as OpenAI's clients send it), `GET /v1/files`, `GET /v1/files/{id}`, `GET /v1/files/{id}/content` and
 * `DELETE /v1/files/{id}`. An upload is compiled on arrival (batch-input.ts), so a bad line is refused at once,
 * named by its number; the gateway keeps the original and the compiled job file. Batch output and error files
 * (purpose `batch_output`) are kept here too.
 *
 * Files live on disk under the gateway's data directory (`<dir>/<id>.json`: the file object and what the batch
 * needs of it; `<id>.data`: the bytes; `<id>.job.jsonl`: the compiled job file), each written whole
 * (batch-store.ts), the object last, so a restart keeps every file it answered with. At the start each object is
 * read back checked (its fields, its bytes there and of its size, an input's job file there); one that is not is
 * skipped and named in `skipped`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { jobFileBytes, parseJobFile, type JobLine } from '../shared/inference/job-files.ts';
import { MAX_JOB_REQUESTS, MAX_JOB_TOKENS } from '../shared/ledger/records.ts';
import { compileBatchFile, type CompiledBatch } from './batch-input.ts';
import { readKept, writeWhole } from './batch-store.ts';
import type { CompileContext } from './compile.ts';
import { ApiError, badRequest } from './openai.ts';

/** The largest upload the gateway takes by default (a job file must also fit one blob, 32 MiB). */
export const DEFAULT_MAX_FILE_BYTES = 32 * 1024 * 1024;

export interface FileObject {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  filename: string;
  purpose: 'batch' | 'batch_output';
  status: 'processed';
  status_details: null;
  expires_at: null;
}

/** What a batch needs of an input file: its model, size and each line's endpoint ('c' chat, 't' text). */
export interface InputSummary {
  model: string;
  requests: number;
  maxTokens: number;
  kinds: string;
}

interface Stored {
  file: FileObject;
  input: InputSummary | null;
}

const FILE_ID = /^file-[0-9a-f]{24}$/;

const storedSchema: z.ZodType<Stored> = z
  .strictObject({
    file: z.strictObject({
      id: z.string().regex(FILE_ID, 'expected file-<24 hex digits>'),
      object: z.literal('file'),
      bytes: z.number().int().nonnegative(),
      created_at: z.number().int().nonnegative(),
      filename: z.string(),
      purpose: z.enum(['batch', 'batch_output']),
      status: z.literal('processed'),
      status_details: z.null(),
      expires_at: z.null(),
    }),
    input: z
      .strictObject({
        model: z.string().min(1).max(256),
        requests: z.number().int().min(1).max(MAX_JOB_REQUESTS),
        maxTokens: z.number().int().min(1).max(MAX_JOB_TOKENS),
        kinds: z.string().regex(/^[ct]+$/, "expected one 'c' or 't' per request"),
      })
      .refine((i) => i.kinds.length === i.requests, { message: 'expected one kind per request', path: ['kinds'] })
      .nullable(),
  })
  .refine((s) => (s.file.purpose === 'batch') === (s.input !== null), {
    message: "a file of purpose 'batch' has an input summary, and only such a file",
    path: ['input'],
  });

const notFound = (id: string) =>
  new ApiError(404, `No such File object: ${id}.`, 'invalid_request_error', 'file_not_found', 'file_id');

export class FileStore {
  private readonly files = new Map<string, Stored>();
  /** Kept objects that did not read back at the last `load`, each naming its file and what is wrong. */
  skipped: string[] = [];

  constructor(private readonly dir: string) {}

  /** Read the files kept on disk, each checked; those that are not what they should be are skipped. */
  async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const sizeOf = (path: string) =>
      stat(path).then(
        (s) => s.size,
        () => null,
      );
    const { values, skipped } = await readKept(this.dir, 'a file object', storedSchema, async (stored, id) => {
      if (stored.file.id !== id) return `it names ${stored.file.id}`;
      const size = await sizeOf(this.path(id, '.data'));
      if (size === null) return `its bytes, ${id}.data, are missing`;
      if (size !== stored.file.bytes) return `its bytes, ${id}.data, are ${size} bytes, not ${stored.file.bytes}`;
      if (stored.input && (await sizeOf(this.path(id, '.job.jsonl'))) === null)
        return `its compiled job file, ${id}.job.jsonl, is missing`;
      return null;
    });
    for (const stored of values) this.files.set(stored.file.id, stored);
    this.skipped = skipped;
  }

  private path(id: string, ext: string): string {
    if (!FILE_ID.test(id)) throw notFound(id);
    return join(this.dir, `${id}${ext}`);
  }

  /** Keep `bytes` as a new file; with `compiled`, an input file whose job file is kept beside it. */
  async add(
    bytes: Uint8Array,
    filename: string,
    purpose: FileObject['purpose'],
    compiled: CompiledBatch | null = null,
  ): Promise<FileObject> {
    const id = `file-${randomBytes(12).toString('hex')}`;
    const file: FileObject = {
      id,
      object: 'file',
      bytes: bytes.length,
      created_at: Math.floor(Date.now() / 1000),
      filename,
      purpose,
      status: 'processed',
      status_details: null,
      expires_at: null,
    };
    const input = compiled
      ? { model: compiled.model, requests: compiled.lines.length, maxTokens: compiled.maxTokens, kinds: compiled.kinds }
      : null;
    await mkdir(this.dir, { recursive: true });
    await writeWhole(this.path(id, '.data'), bytes);
    if (compiled) await writeWhole(this.path(id, '.job.jsonl'), jobFileBytes(compiled.lines));
    // The object last: a file is there once its object is.
    await writeWhole(this.path(id, '.json'), JSON.stringify({ file, input } satisfies Stored));
    this.files.set(id, { file, input });
    return file;
  }

  /** The file object, or 404. */
  get(id: string): FileObject {
    const stored = this.files.get(id);
    if (!stored) throw notFound(id);
    return stored.file;
  }

  /** What a batch needs of input file `id`: 404 for an unknown file, 400 for one that is not a batch input. */
  input(id: string): InputSummary {
    const stored = this.files.get(id);
    if (!stored) throw notFound(id);
    if (!stored.input)
      throw badRequest(
        `File ${id} has purpose '${stored.file.purpose}'; a batch's input needs purpose 'batch'.`,
        'input_file_id',
      );
    return stored.input;
  }

  /** The compiled job lines of input file `id`. */
  async jobLines(id: string): Promise<JobLine[]> {
    const input = this.input(id);
    return parseJobFile(await readFile(this.path(id, '.job.jsonl')), { model: input.model });
  }

  list(purpose?: string): FileObject[] {
    return [...this.files.values()]
      .map((s) => s.file)
      .filter((f) => purpose === undefined || f.purpose === purpose)
      .sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
  }

  async content(id: string): Promise<Buffer> {
    this.get(id);
    return readFile(this.path(id, '.data'));
  }

  async delete(id: string): Promise<void> {
    this.get(id);
    this.files.delete(id);
    // The object first: a file is gone once its object is.
    for (const ext of ['.json', '.data', '.job.jsonl']) await rm(this.path(id, ext), { force: true });
  }
}

export interface FileRoutesInit {
  files: FileStore;
  compile: CompileContext;
  /** The largest upload, bytes. */
  maxFileBytes: number;
}

/** The multipart error codes of @fastify/multipart and busboy that mean a malformed upload. */
const MULTIPART_LIMITS = new Set(['FST_FILES_LIMIT', 'FST_FIELDS_LIMIT', 'FST_PARTS_LIMIT']);

export function registerFileRoutes(app: FastifyInstance, init: FileRoutesInit): void {
  const { files } = init;

  app.post('/v1/files', async (req) => {
    if (!req.isMultipart())
      throw badRequest(
        "Upload the file as multipart/form-data with fields 'purpose' (batch) and 'file', as OpenAI's clients do.",
      );
    let purpose: string | null = null;
    let upload: { bytes: Buffer; filename: string } | null = null;
    try {
      for await (const part of req.parts({
        limits: { fileSize: init.maxFileBytes, files: 1, fields: 8, fieldSize: 1024 },
      })) {
        if (part.type === 'file') {
          if (part.fieldname !== 'file') throw badRequest(`Unexpected file field '${part.fieldname}'.`, part.fieldname);
          upload = { bytes: await part.toBuffer(), filename: part.filename || 'upload.jsonl' };
        } else if (part.fieldname === 'purpose') purpose = String(part.value);
      }
    } catch (err) {
      if (err instanceof ApiError) throw err;
      const code = (err as { code?: string }).code ?? '';
      if (code === 'FST_REQ_FILE_TOO_LARGE')
        throw new ApiError(
          413,
          `The file is over ${init.maxFileBytes} bytes, the most this gateway takes; split the requests into several batches.`,
          'invalid_request_error',
          'file_too_large',
          'file',
        );
      if (MULTIPART_LIMITS.has(code)) throw badRequest(`Send one file and the purpose field only (${code}).`);
      throw badRequest(`The multipart body could not be read (${(err as Error).message}).`);
    }
    if (purpose === null)
      throw badRequest("Missing required parameter: 'purpose'.", 'purpose', 'missing_required_parameter');
    if (purpose !== 'batch')
      throw badRequest(
        `Invalid value for 'purpose': this gateway takes files for batches only (purpose 'batch'), not '${purpose}'.`,
        'purpose',
        'invalid_value',
      );
    if (!upload) throw badRequest("Missing required parameter: 'file'.", 'file', 'missing_required_parameter');
    const compiled = await compileBatchFile(upload.bytes, init.compile);
    return files.add(upload.bytes, upload.filename, 'batch', compiled);
  });

  app.get<{ Querystring: { purpose?: string } }>('/v1/files', async (req) => {
    const data = files.list(req.query.purpose);
    return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: false };
  });

  app.get<{ Params: { id: string } }>('/v1/files/:id', async (req) => files.get(req.params.id));

  app.get<{ Params: { id: string } }>('/v1/files/:id/content', async (req, reply) =>
    reply.header('content-type', 'application/jsonl; charset=utf-8').send(await files.content(req.params.id)),
  );

  app.delete<{ Params: { id: string } }>('/v1/files/:id', async (req) => {
    await files.delete(req.params.id);
    return { id: req.params.id, object: 'file', deleted: true };
  });
}
