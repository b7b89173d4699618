/**
 * Content-addressed files off the ledger (`/webtensor/blobs/1`): batch jobs' request and result files travel
 * between client, miners and validators named by their sha256, which is what the ledger holds (docs/jobs.md).
 *
 * Serving: `blob.get {hash, offset, length?}` answers a header chunk `{size}`, then the bytes from `offset` in
 * chunks `{at, data}` (45 KiB as base64, one frame each), at most 4 MiB per request, then `{hash, size, offset,
 * sent}`. Only the blobs this node chose to serve (`serve`) are ever read, each peer is rate-limited and the
 * streams are bounded.
 *
 * Fetching: `fetch(peer, hash, {maxBytes})` asks for 4 MiB windows and appends what arrives to the store's partial
 * download of `hash`, so an interrupted fetch continues later from the bytes held; at the end the bytes must hash to
 * the name, or nothing is kept. The size announced is checked against `maxBytes`, the per-blob limit and the quota
 * before any byte is written; a peer that sends more than it announced or asked for (or less than asked), bytes at
 * the wrong offset, or bytes that do not hash right is refused, counted against it, and its bytes are deleted. Nothing a peer sends
 * is held beyond one window in memory, or beyond the size it announced (at most `maxBytes`) on disk.
 */
import { RateLimiter } from '@libp2p/utils';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { z } from 'zod';
import { NodeError } from '../../shared/errors.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import { KeyedLock } from '../chunked-blob-store.ts';
import { checkBlobHash, type BlobStore } from '../platform.ts';
import { Store } from '../store.ts';
import type { RpcRouter } from './rpc.ts';

/** Bytes per chunk: 60 KiB of base64, which with its envelope fits a 64 KiB frame. */
export const BLOB_CHUNK_BYTES = 45 * 1024;
/** The most one `blob.get` answers (the rest is asked for again): well inside the server's 30 s per request. */
export const MAX_REPLY_BYTES = 4 * 1024 * 1024;
/** The largest blob a node fetches or stores unless told otherwise. */
export const DEFAULT_MAX_BLOB_BYTES = 32 * 1024 * 1024;
/** Bytes a fetch gathers before appending them to the partial download. */
const APPEND_BYTES = 256 * 1024;
/** Bytes the server reads from its store at a time (ten chunks). */
const READ_BYTES = 10 * BLOB_CHUNK_BYTES;

export interface BlobsComponents {
  rpc: Pick<RpcRouter, 'handle' | 'call' | 'countRefusal'>;
  store: BlobStore;
}

export interface BlobsInit {
  /** The largest blob fetched or added (default 32 MiB). */
  maxBlobBytes?: number;
  /** Stored plus partial bytes allowed (default: the store's, 256 MiB in Node and 64 MiB in a tab). */
  quotaBytes?: number;
  /** Bytes asked for per `blob.get` (default and at most 4 MiB). */
  windowBytes?: number;
  /** `blob.get` requests served at once, from everyone together (default 4); beyond, `busy`. */
  maxStreams?: number;
  /** `blob.get` requests per peer (default 30 per 10 s); beyond, `rate-limited`. */
  rate?: { requests: number; perSeconds: number };
  /** How long one window may take (default 45 s). */
  windowTimeoutMs?: number;
}

export interface BlobsState {
  /** The blobs this node serves, sorted. */
  served: readonly string[];
  /** `blob.get` requests being answered now. */
  streams: number;
  /** Bytes of blobs sent to peers and received from them (kept or not). */
  sentBytes: number;
  receivedBytes: number;
}

export interface FetchOptions {
  /** Refuse a blob larger than this (default and at most the per-blob limit). */
  maxBytes?: number;
  signal?: AbortSignal;
  /** Bytes held of the blob so far, and its size, as the download goes. */
  onProgress?: (held: number, size: number) => void;
}

export interface FetchResult {
  hash: string;
  size: number;
  /** Bytes received from the peer by this call (0 if the blob was already held). */
  received: number;
  /** Bytes held from an earlier, interrupted download when this one began. */
  resumedFrom: number;
}

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected the sha256 of the blob, 64 lowercase hex characters');
const offsetSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const getParams = z.strictObject({
  hash: hex64,
  offset: offsetSchema,
  length: z.number().int().min(1).max(MAX_REPLY_BYTES).optional(),
});
const headerChunk = z.strictObject({ size: offsetSchema });
const dataChunk = z.strictObject({ at: offsetSchema, data: z.string().max(64 * 1024) });
const finalReply = z.strictObject({ hash: hex64, size: offsetSchema, offset: offsetSchema, sent: offsetSchema });

/** Standard base64 of `bytes`. */
export function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let k = 0; k < bytes.length; k += 0x8000) binary += String.fromCharCode(...bytes.subarray(k, k + 0x8000));
  return btoa(binary);
}

/** The bytes of standard, padded base64, or null for anything else. */
export function fromBase64(text: string): Uint8Array | null {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    return null;
  }
  const out = new Uint8Array(binary.length);
  for (let k = 0; k < binary.length; k++) out[k] = binary.charCodeAt(k);
  return out;
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Why a fetch stopped, and what follows: delete the partial download, count it against the peer. */
interface Stop {
  error: Error;
  discard: boolean;
  blame: boolean;
}

/** A stopped fetch, as thrown out of one window. */
class FetchStopped extends Error {
  constructor(readonly stop: Stop) {
    super(stop.error.message);
  }
}

/**
 * What is wrong with the end of a window's answer, or null: a server announces the size, sends all that was asked
 * up to the end (one that sends less would make a fetch ask forever), and ends with what it sent.
 */
function endProblem(
  reply: unknown,
  got: { hash: string; from: number; asked: number; size: number | null; position: number },
): string | null {
  const { hash, from, asked, size, position } = got;
  if (size === null) return `answered without announcing the size of blob ${hash}`;
  const final = finalReply.safeParse(reply);
  if (!final.success) return 'ended its answer malformed (expected {hash, size, offset, sent})';
  const { data } = final;
  if (data.hash !== hash || data.size !== size || data.offset !== from || data.sent !== position - from)
    return (
      `ended its answer with ${JSON.stringify(data)} after sending ${position - from} bytes of ${size} ` +
      `from offset ${from}`
    );
  const due = Math.min(size, from + asked) - from;
  if (position - from !== due) return `sent ${position - from} bytes from offset ${from} where ${due} were asked for`;
  return null;
}

export class Blobs {
  readonly state = new Store<BlobsState>({ served: [], streams: 0, sentBytes: 0, receivedBytes: 0 });
  private readonly served = new Set<string>();
  private readonly limiter: RateLimiter;
  private readonly rate: { requests: number; perSeconds: number };
  /** One fetch, add or delete per hash at a time. */
  private readonly locks = new KeyedLock();
  /** Hashes being fetched: their partial downloads are not evicted. */
  private readonly fetching = new Set<string>();
  /** Bytes admitted but not yet written, per hash (fetches and adds in progress): counted against the quota. */
  private readonly reserved = new Map<string, { size: number; written: number }>();
  /** Quota checks, one at a time, so two admissions never both count the same free bytes. */
  private admission: Promise<void> = Promise.resolve();
  readonly maxBlobBytes: number;
  readonly quotaBytes: number;
  private readonly windowBytes: number;
  private readonly maxStreams: number;

  constructor(
    private readonly components: BlobsComponents,
    private readonly init: BlobsInit = {},
  ) {
    this.maxBlobBytes = init.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;
    this.quotaBytes = init.quotaBytes ?? components.store.quotaBytes;
    this.windowBytes = Math.min(init.windowBytes ?? MAX_REPLY_BYTES, MAX_REPLY_BYTES);
    this.maxStreams = init.maxStreams ?? 4;
    this.rate = init.rate ?? { requests: 30, perSeconds: 10 };
    this.limiter = new RateLimiter({ points: this.rate.requests, duration: this.rate.perSeconds });
  }

  async start(): Promise<void> {
    await this.components.rpc.handle(
      PROTOCOLS.blobs,
      {
        'blob.get': {
          check: (p) => {
            const parsed = getParams.safeParse(p);
            if (parsed.success) return null;
            const issue = parsed.error.issues[0]!;
            return `params must be {hash, offset, length?: 1-${MAX_REPLY_BYTES}} (${issue.path.join('.') || 'params'}: ${issue.message})`;
          },
          run: (p, ctx) => this.answer(getParams.parse(p), ctx.peer, ctx.emit, ctx.signal),
        },
      },
      {
        maxInboundStreams: this.maxStreams,
        // Busy is this node's state, and a caller may stop reading (it found what it needed, or a lie).
        onRefused: (_peer, code) => code !== 'busy' && code !== 'cancelled',
      },
    );
  }

  stop(): void {}

  /** Store `bytes` as a blob (within the per-blob limit and the quota); resolves to its hash. */
  async add(bytes: Uint8Array): Promise<string> {
    if (bytes.length > this.maxBlobBytes)
      throw new NodeError('bad-input', `a blob is at most ${this.maxBlobBytes} bytes; this one is ${bytes.length}`);
    const hash = bytesToHex(sha256(bytes));
    await this.locks.run(hash, async () => {
      if (await this.components.store.has(hash)) return;
      await this.admit(hash, bytes.length, 0);
      try {
        await this.components.store.put(bytes);
      } finally {
        this.reserved.delete(hash);
      }
    });
    return hash;
  }

  /** Serve a blob this node holds to whoever asks for it. */
  async serve(hash: string): Promise<void> {
    checkBlobHash(hash);
    if (!(await this.components.store.has(hash)))
      throw new NodeError('bad-input', `cannot serve blob ${hash}: no such blob is stored here`);
    this.served.add(hash);
    this.publishServed();
  }

  unserve(hash: string): void {
    if (this.served.delete(hash)) this.publishServed();
  }

  isServed(hash: string): boolean {
    return this.served.has(hash);
  }

  /** Stop serving `hash` and delete it, and any partial download of it. */
  async delete(hash: string): Promise<void> {
    checkBlobHash(hash);
    this.unserve(hash);
    await this.locks.run(hash, async () => {
      await this.components.store.delete(hash);
      await this.components.store.deletePartial(hash);
    });
  }

  /** Whether the blob is stored here (whole: a partial download does not count). */
  has(hash: string): Promise<boolean> {
    checkBlobHash(hash);
    return this.components.store.has(hash);
  }

  /** The bytes of a blob stored here, whole (a blob is at most the per-blob limit); refuses one not held. */
  async read(hash: string): Promise<Uint8Array> {
    checkBlobHash(hash);
    const size = await this.components.store.size(hash);
    if (size === null) throw new NodeError('bad-input', `no blob ${hash} is stored here`);
    return size === 0 ? new Uint8Array(0) : this.components.store.read(hash, 0, size);
  }

  /** Bytes held (stored, and in partial downloads) and the quota. */
  async usage(): Promise<{ stored: number; partial: number; quota: number }> {
    return { ...(await this.components.store.usage()), quota: this.quotaBytes };
  }

  /**
   * Fetch blob `hash` from `peer` into the store, continuing a download interrupted earlier. Rejects with
   * NodeError (`bad-input`: the hash or maxBytes; `storage`: over the quota), RpcError `too-large` (the blob is
   * larger than maxBytes), RpcError `bad-frame` (the peer sent what it should not have, or bytes that do not hash
   * to `hash`: nothing of it is kept), or the peer's or the transport's RpcError (what arrived is kept for later).
   */
  async fetch(peer: string, hash: string, options: FetchOptions = {}): Promise<FetchResult> {
    checkBlobHash(hash);
    const maxBytes = options.maxBytes ?? this.maxBlobBytes;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0)
      throw new NodeError('bad-input', `maxBytes must be a whole number of bytes; got ${maxBytes}`);
    const limit = Math.min(maxBytes, this.maxBlobBytes);
    return this.locks.run(hash, async () => {
      const held = await this.components.store.size(hash);
      if (held !== null) return { hash, size: held, received: 0, resumedFrom: held };
      this.fetching.add(hash);
      try {
        return await this.download(peer, hash, limit, options);
      } finally {
        this.fetching.delete(hash);
        this.reserved.delete(hash);
      }
    });
  }

  // ---- serving ----

  private async answer(
    params: z.infer<typeof getParams>,
    peer: string,
    emit: (chunk: Json) => Promise<void>,
    signal: AbortSignal,
  ): Promise<Json> {
    const { hash, offset } = params;
    try {
      this.limiter.consume(peer);
    } catch {
      throw new RpcError(
        'rate-limited',
        `at most ${this.rate.requests} blob requests per ${this.rate.perSeconds} s per peer; slow down`,
      );
    }
    // Served or not, held or not: a node answers the same for every blob it does not serve.
    if (!this.served.has(hash)) throw new RpcError('bad-params', `this node serves no blob ${hash}`);
    if (this.state.get().streams >= this.maxStreams)
      throw new RpcError('busy', `this node is sending ${this.maxStreams} blobs already; try again shortly`);
    const store = this.components.store;
    this.state.update({ streams: this.state.get().streams + 1 });
    try {
      const size = await store.size(hash);
      if (size === null) throw new RpcError('bad-params', `this node serves no blob ${hash}`);
      if (offset > size)
        throw new RpcError('bad-params', `offset ${offset} is past the end of blob ${hash} (${size} bytes)`);
      const end = Math.min(size, offset + (params.length ?? MAX_REPLY_BYTES));
      await emit({ size });
      for (let at = offset; at < end;) {
        const slab = await store.read(hash, at, Math.min(READ_BYTES, end - at));
        if (slab.length === 0) throw new RpcError('internal', `blob ${hash} ended early`);
        for (let k = 0; k < slab.length; k += BLOB_CHUNK_BYTES) {
          if (signal.aborted) throw new RpcError('cancelled', 'the caller stopped reading');
          const piece = slab.subarray(k, k + BLOB_CHUNK_BYTES);
          await emit({ at: at + k, data: toBase64(piece) });
          this.state.update({ sentBytes: this.state.get().sentBytes + piece.length });
        }
        at += slab.length;
      }
      return { hash, size, offset, sent: end - offset };
    } finally {
      this.state.update({ streams: this.state.get().streams - 1 });
    }
  }

  private publishServed(): void {
    this.state.update({ served: [...this.served].sort() });
  }

  // ---- fetching ----

  private async download(peer: string, hash: string, limit: number, options: FetchOptions): Promise<FetchResult> {
    const store = this.components.store;
    const resumedFrom = await store.partialSize(hash);
    let held = resumedFrom;
    let size: number | null = null;
    let received = 0;
    for (;;) {
      let window: { size: number; got: number };
      try {
        window = await this.window(peer, hash, held, size, limit, options);
      } catch (err) {
        if (!(err instanceof FetchStopped)) throw err;
        if (err.stop.discard) await store.deletePartial(hash);
        if (err.stop.blame) this.components.rpc.countRefusal(peer);
        throw err.stop.error;
      }
      size = window.size;
      held += window.got;
      received += window.got;
      // Every window brings all it asked for (checked), so this ends after at most size / window requests.
      if (held >= size) break;
    }
    const actual = await store.completePartial(hash);
    if (actual !== hash) {
      this.components.rpc.countRefusal(peer);
      throw new RpcError(
        'bad-frame',
        `the ${size} bytes of blob ${hash} (${received} from ${peer} now, ${resumedFrom} from before) hash to ` +
          `${actual}: nothing of them was kept`,
      );
    }
    return { hash, size, received, resumedFrom };
  }

  /**
   * One `blob.get` from `from`: check every chunk as it arrives, append the bytes to the partial download (the
   * first window waits for the quota's admission before writing), and say how many bytes it added. Throws
   * FetchStopped when the fetch must stop for something the peer sent or the quota.
   */
  private async window(
    peer: string,
    hash: string,
    from: number,
    known: number | null,
    limit: number,
    options: FetchOptions,
  ): Promise<{ size: number; got: number }> {
    const store = this.components.store;
    const controller = new AbortController();
    let stop: Stop | null = null;
    const halt = (s: Stop) => {
      stop ??= s;
      controller.abort();
    };
    const lie = (message: string) =>
      halt({
        error: new RpcError('bad-frame', `${peer} ${message}; nothing of blob ${hash} was kept`),
        discard: true,
        blame: true,
      });
    const asked = this.windowBytes;
    let size: number | null = null;
    let position = from;
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    let written = 0;
    let writes: Promise<void> = Promise.resolve();
    const later = (work: () => Promise<void>) => {
      writes = writes
        .then(async () => {
          if (!stop) await work();
        })
        .catch((err: unknown) => halt({ error: err as Error, discard: false, blame: false }));
    };
    const flush = () => {
      if (pendingBytes === 0) return;
      const bytes = concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      later(async () => {
        await store.appendPartial(hash, bytes);
        const reservation = this.reserved.get(hash);
        if (reservation) reservation.written += bytes.length;
        written += bytes.length;
        options.onProgress?.(from + written, size ?? 0);
      });
    };
    const onChunk = (chunk: Json) => {
      if (stop) return;
      if (size === null) {
        const header = headerChunk.safeParse(chunk);
        if (!header.success) return lie(`sent a chunk before announcing the size of blob ${hash}`);
        const announced = header.data.size;
        if (known !== null && announced !== known)
          return lie(`announced ${announced} bytes for blob ${hash} after announcing ${known}`);
        if (announced < from)
          return lie(`announced ${announced} bytes for blob ${hash}, fewer than the ${from} already held`);
        if (announced > limit)
          return halt({
            error: new RpcError(
              'too-large',
              `${peer} announced ${announced} bytes for blob ${hash}; this fetch takes at most ${limit}`,
            ),
            discard: true,
            blame: false,
          });
        size = announced;
        // The first window admits the whole rest of the blob against the quota before a byte is written.
        if (known === null) later(() => this.admit(hash, announced, from));
        return;
      }
      const parsed = dataChunk.safeParse(chunk);
      if (!parsed.success) return lie('sent a malformed chunk (expected {at, data: base64})');
      const bytes = fromBase64(parsed.data.data);
      if (!bytes) return lie('sent a chunk whose data is not base64');
      if (parsed.data.at !== position) return lie(`sent bytes at offset ${parsed.data.at} where ${position} was next`);
      if (bytes.length === 0) return lie('sent an empty chunk');
      if (position + bytes.length > size) return lie(`sent more than the ${size} bytes it announced`);
      if (position + bytes.length > from + asked) return lie(`sent more than the ${asked} bytes asked for`);
      position += bytes.length;
      this.state.update({ receivedBytes: this.state.get().receivedBytes + bytes.length });
      pending.push(bytes);
      pendingBytes += bytes.length;
      if (pendingBytes >= APPEND_BYTES) flush();
    };

    let reply: Json | undefined;
    let failure: unknown = null;
    try {
      reply = await this.components.rpc.call(
        peer,
        'blob.get',
        { hash, offset: from, length: asked },
        {
          protocol: PROTOCOLS.blobs,
          onChunk,
          signal: options.signal ? AbortSignal.any([controller.signal, options.signal]) : controller.signal,
          timeoutMs: this.init.windowTimeoutMs ?? 45_000,
        },
      );
    } catch (err) {
      failure = err;
    }
    // What arrived intact is kept, whether the reply ended or was cut off: a later fetch continues after it.
    flush();
    await writes;
    // (`stop` is set from callbacks: read it through a function, which the compiler does not narrow.)
    const stopped = (): Stop | null => stop;
    if (stopped()) throw new FetchStopped(stopped()!);
    if (failure) throw failure;
    const problem = endProblem(reply, { hash, from, asked, size, position });
    if (problem) lie(problem);
    if (stopped()) throw new FetchStopped(stopped()!);
    return { size: size ?? 0, got: position - from };
  }

  /**
   * Admit `size - held` more bytes of `hash` against the quota, counting the other downloads' admitted bytes; a
   * partial download nobody is fetching is dropped to make room before refusing. On success the bytes are reserved
   * for `hash` until its fetch or add ends.
   */
  private admit(hash: string, size: number, held: number): Promise<void> {
    const check = async () => {
      const store = this.components.store;
      const need = size - held;
      const others = () => {
        let n = 0;
        for (const [h, r] of this.reserved) if (h !== hash) n += Math.max(0, r.size - r.written);
        return n;
      };
      const usage = await store.usage();
      const stored = usage.stored;
      let partial = usage.partial;
      const fits = () => stored + partial + others() + need <= this.quotaBytes;
      if (!fits())
        for (const p of await store.listPartials()) {
          if (p.hash === hash || this.fetching.has(p.hash)) continue;
          await store.deletePartial(p.hash);
          partial -= p.size;
          if (fits()) break;
        }
      if (!fits()) {
        const reserved = others();
        throw new NodeError(
          'storage',
          `blob quota: blob ${hash} needs ${need} more bytes, but blobs use ${stored + partial + reserved} of the ` +
            `${this.quotaBytes} allowed (${stored} stored, ${partial} in partial downloads, ${reserved} reserved by ` +
            'downloads in progress); delete blobs or raise the quota',
        );
      }
      this.reserved.set(hash, { size: need, written: 0 });
    };
    const run = this.admission.then(check);
    this.admission = run.catch(() => {});
    return run;
  }
}
