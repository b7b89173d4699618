/**
 * `/webtensor/rpc/1`: one request per stream, answered by zero or more streamed chunks and one final result or
 * typed error. The server checks, in order: frame size, JSON, schema, that `from` is the connection's peer, the
 * signature, freshness, replay, the peer's rate limit, the method and its params. A request that fails any
 * check gets an error reply and changes nothing; the handler never sees it.
 */
import type { Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import type { z } from 'zod';
import { ReplayGuard, RateLimiter } from './guards.ts';
import {
  type ErrorCode,
  MAX_FRAME_BYTES,
  RpcError,
  type RpcReply,
  decodeFrame,
  encodeFrame,
  replySchema,
  requestSchema,
} from './messages.ts';
import { verifyRequest } from './signing.ts';

export type Json = z.infer<ReturnType<typeof z.json>>;

export interface HandlerContext {
  peer: string;
  /** The request's id, for answers that must name the request they answer. */
  requestId: string;
  /** Aborts on the server's timeout, or when the caller resets the stream (it cancelled). */
  signal: AbortSignal;
  /** Stream a partial result to the caller before the final one. */
  emit(chunk: Json): Promise<void>;
}

export interface Method {
  /** Validates params; return an error sentence to refuse them. */
  check?(params: Json): string | null;
  run(params: Json, ctx: HandlerContext): Promise<Json>;
}

export interface RpcServerOptions {
  methods: Record<string, Method>;
  timeoutMs?: number;
  now?: () => number;
  /** Called for every refused request: the basis of a peer's local reputation. */
  onRefused?: (peer: string, code: ErrorCode, message: string) => void;
}

export class RpcServer {
  private readonly replay = new ReplayGuard();
  private readonly limiter = new RateLimiter();
  private readonly now: () => number;

  constructor(private readonly options: RpcServerOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Serve one inbound stream from `peer`. Never throws: every failure becomes an error reply or a reset. */
  async handle(stream: Stream, peer: string): Promise<void> {
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES });
    const timeout = AbortSignal.timeout(this.options.timeoutMs ?? 30_000);
    const callerGone = new AbortController();
    const onClose = () => callerGone.abort(new RpcError('cancelled', 'the caller closed the stream'));
    stream.addEventListener('close', onClose, { once: true });
    const signal = AbortSignal.any([timeout, callerGone.signal]);
    let id = 'unknown';
    const reply = (message: RpcReply) => lp.write(encodeFrame(message), { signal });
    try {
      let frame: Uint8Array;
      try {
        frame = (await lp.read({ signal })).subarray();
      } catch (err) {
        const tooLarge = /max|length|too long/i.test((err as Error).message);
        throw new RpcError(
          tooLarge ? 'too-large' : 'bad-frame',
          tooLarge ? `frame exceeds ${MAX_FRAME_BYTES} bytes` : 'no complete frame',
        );
      }
      const req = decodeFrame(frame, requestSchema);
      id = req.id;
      if (req.from !== peer)
        throw new RpcError('wrong-sender', `request claims to be from ${req.from} but came from ${peer}`);
      if (!(await verifyRequest(req)))
        throw new RpcError('bad-signature', 'signature does not verify against the sender key');
      const fresh = this.replay.check(req.from, req.id, req.ts, this.now());
      if (fresh === 'stale') throw new RpcError('stale', `timestamp ${req.ts} is more than 30 s from now`);
      if (fresh === 'replay') throw new RpcError('replay', `request ${req.id} was already seen`);
      if (!this.limiter.take(peer, this.now())) throw new RpcError('rate-limited', 'too many requests; slow down');
      const method = this.options.methods[req.method];
      if (!method) throw new RpcError('unknown-method', `no method "${req.method}"`);
      const problem = method.check?.(req.params);
      if (problem) throw new RpcError('bad-params', problem);
      let seq = 0;
      const result = await method.run(req.params, {
        peer,
        requestId: req.id,
        signal,
        emit: (data) => reply({ t: 'chunk', id: req.id, seq: seq++, data }),
      });
      await reply({ t: 'res', id: req.id, ok: true, result });
      await stream.close({ signal }).catch(() => {});
    } catch (err) {
      const e =
        err instanceof RpcError
          ? err
          : callerGone.signal.aborted
            ? new RpcError('cancelled', 'the caller cancelled the request')
            : timeout.aborted
              ? new RpcError('timeout', 'request took too long')
              : new RpcError('internal', 'the handler failed');
      this.options.onRefused?.(peer, e.code, e.message);
      try {
        await reply({
          t: 'res',
          id: /^[A-Za-z0-9_-]{1,64}$/.test(id) ? id : 'unknown',
          ok: false,
          error: { code: e.code, message: e.message },
        });
        await stream.close({ signal });
      } catch {
        stream.abort(e);
      }
    } finally {
      stream.removeEventListener('close', onClose);
    }
  }
}

/**
 * Client side of one exchange: write `frames` (normally one signed request) on a fresh stream, then read replies
 * until the final one. Chunks go to `onChunk`; an error reply throws RpcError with the server's code.
 */
export async function exchange(
  stream: Stream,
  frames: Uint8Array[],
  id: string,
  signal: AbortSignal,
  onChunk?: (data: Json) => void,
): Promise<Json> {
  const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES });
  try {
    for (const f of frames) await lp.write(f, { signal });
    for (;;) {
      const reply = decodeFrame((await lp.read({ signal })).subarray(), replySchema);
      if (reply.id !== id && reply.id !== 'unknown')
        throw new RpcError('bad-frame', `reply for ${reply.id}, expected ${id}`);
      if (reply.t === 'chunk') onChunk?.(reply.data);
      else if (reply.ok) return reply.result;
      else throw new RpcError(reply.error.code, reply.error.message);
    }
  } finally {
    // Cancelled: reset the stream so the server stops working on it at once. Otherwise close our end too, or
    // half-closed streams pile up until the peer's inbound stream limit resets new ones.
    if (signal.aborted) stream.abort(new Error('the caller cancelled the request'));
    else await stream.close({ signal }).catch(() => stream.abort(new Error('closing the RPC stream failed')));
  }
}
