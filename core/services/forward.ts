/**
 * Forwarding (`/webtensor/forward/1`; docs/protocol.md, docs/validator.md "Forwarded challenges"): a validator's
 * challenge sent from another peer's key, so the miner sees an ordinary client's request and cannot answer
 * validators honestly and users cheaply.
 *
 * Serving (every node, through its client): `forward.generate` `{ miner, params }` sends `infer.generate` with
 * `params` to `miner` from this node's own key, exactly as a user's request, and answers with the miner's signed
 * result as it came. This node is not told why; it forwards only
 *  - to a key registered as a miner of a subnet serving `params.model` (no open proxy), and not to itself or the
 *    asker;
 *  - for a key holding a validator permit on that subnet in this node's ledger view (no free relay for anyone);
 *  - params that pass the protocol's schema;
 *  - FORWARD_RATE per asker, at most MAX_FORWARDS_PER_PEER of one asker's and MAX_FORWARDS in all at once (then
 *    `rate-limited` / `busy`), each given FORWARD_TIMEOUT_MS.
 * The forwarder cannot forge or alter the answer: it is signed by the miner over its request id and paramsHash, and
 * the asker checks it as it checks a direct answer (`through`).
 *
 * Asking (`through`, the validator): the answer must be signed by the miner asked over exactly the params sent;
 * anything else (a refusal, a timeout, an altered or re-paired answer) is the forwarder's failure, which the
 * validator never counts against the miner.
 */
import { Queue, QueueFullError, RateLimiter } from '@libp2p/utils';
import { z } from 'zod';
import {
  checkResult,
  generateParamsSchema,
  type GenerateParams,
  type GenerateResult,
} from '../../shared/inference/protocol.ts';
import type { SubnetConfig } from '../../shared/ledger/config.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import { RpcError, type ErrorCode } from '../../shared/p2p/messages.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import { Store, type ReadableStore } from '../store.ts';
import type { Client } from './client.ts';
import type { RpcRouter } from './rpc.ts';

export const FORWARD_METHOD = 'forward.generate';
/** How long a forwarder waits for the miner's answer (the RPC server gives a handler 30 s). */
export const FORWARD_TIMEOUT_MS = 25_000;
/** Forwards in progress at once, from every asker together; beyond, `busy`. */
export const MAX_FORWARDS = 4;
/** Forwards of one asker in progress at once (a validator has one challenge out at a time); beyond, `busy`. */
export const MAX_FORWARDS_PER_PEER = 2;
/** Forwards one asker may ask for in a window; beyond, `rate-limited`. */
export const FORWARD_RATE = { requests: 10, perSeconds: 10 };

const peerIdString = z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{40,128}$/, 'expected a base58 peer id');
/** `forward.generate`'s params: which miner, and what to ask it. Nothing else (the forwarder is told no more). */
export const forwardRequestSchema = z.strictObject({ miner: peerIdString, params: generateParamsSchema });
export type ForwardRequest = z.infer<typeof forwardRequestSchema>;

export interface ForwardState {
  /** Answers forwarded back; forwards the miner did not answer (error, timeout); requests refused. */
  forwarded: number;
  failed: number;
  refused: number;
}

export interface ForwarderComponents {
  rpc: Pick<RpcRouter, 'handle' | 'call'>;
  /** Sends the request exactly as a user's (same key, same request ids, connecting on demand). */
  client: Pick<Client, 'infer'>;
  /** The latest replay: who is a miner, who holds a permit (null on a node without a network: it forwards nothing). */
  snapshot: ReadableStore<LedgerSnapshot | null> | null;
  /** The network's subnets (which model each serves). */
  subnets: readonly Pick<SubnetConfig, 'netuid' | 'model'>[];
  /** This node's peer id. */
  self: string;
}

export interface ForwarderInit {
  rate?: { requests: number; perSeconds: number };
  maxForwards?: number;
  maxPerPeer?: number;
  timeoutMs?: number;
}

/** Failures of the miner that are nobody's fault on this side: passed on by code, not counted against the asker. */
const PASSED_ON: readonly ErrorCode[] = ['timeout', 'busy', 'cancelled', 'unsupported-model'];
/** Refusals that are not the asker's doing (this node is full, the miner failed, the asker left). */
const NOT_THE_ASKERS: readonly ErrorCode[] = ['busy', 'timeout', 'cancelled', 'unsupported-model', 'internal'];

export class Forwarder {
  readonly state = new Store<ForwardState>({ forwarded: 0, failed: 0, refused: 0 });
  private readonly limiter: RateLimiter;
  private readonly queue: Queue<GenerateResult>;
  private readonly perPeer = new Map<string, number>();
  private readonly maxPerPeer: number;
  private readonly timeoutMs: number;
  private readonly rate: { requests: number; perSeconds: number };

  constructor(
    private readonly components: ForwarderComponents,
    init: ForwarderInit = {},
  ) {
    this.rate = init.rate ?? FORWARD_RATE;
    this.limiter = new RateLimiter({ points: this.rate.requests, duration: this.rate.perSeconds });
    const max = init.maxForwards ?? MAX_FORWARDS;
    // Nothing waits: a forward runs at once or is refused (a wait would only slow the miner's measured answer).
    this.queue = new Queue({ concurrency: max, maxSize: max });
    this.maxPerPeer = init.maxPerPeer ?? MAX_FORWARDS_PER_PEER;
    this.timeoutMs = init.timeoutMs ?? FORWARD_TIMEOUT_MS;
  }

  async start(): Promise<void> {
    await this.components.rpc.handle(
      PROTOCOLS.forward,
      {
        [FORWARD_METHOD]: {
          check: (p) => {
            const r = forwardRequestSchema.safeParse(p);
            if (r.success) return null;
            this.count('refused');
            return `${r.error.issues[0]!.path.join('.') || 'params'}: ${r.error.issues[0]!.message}`;
          },
          run: async (p, ctx) => (await this.forward(forwardRequestSchema.parse(p), ctx.peer, ctx.signal)) as Json,
        },
      },
      {
        maxInboundStreams: 8,
        onRefused: (_peer, code) => !NOT_THE_ASKERS.includes(code),
      },
    );
  }

  /** Serve one `forward.generate` from `from`: checks, then the miner's signed answer as it came. */
  async forward({ miner, params }: ForwardRequest, from: string, signal: AbortSignal): Promise<GenerateResult> {
    const refuse = (code: ErrorCode, message: string): never => {
      this.count('refused');
      throw new RpcError(code, message);
    };
    const { self } = this.components;
    if (miner === self || miner === from) return refuse('bad-params', 'this node forwards only to other peers');
    const serving = new Set(this.components.subnets.filter((s) => s.model === params.model).map((s) => s.netuid));
    const sub = this.components.snapshot
      ?.get()
      ?.subnets.find((s) => serving.has(s.netuid) && s.uids.some((u) => u.hotkey === miner && u.role === 'miner'));
    if (!sub) return refuse('bad-params', `${miner} is not a registered miner of ${params.model}`);
    const permitted = sub.uids.some((u, uid) => u.hotkey === from && u.role === 'validator' && sub.permits[uid]);
    if (!permitted)
      return refuse('bad-params', `this node forwards only for validators with a permit on subnet ${sub.netuid}`);
    try {
      this.limiter.consume(from);
    } catch {
      return refuse('rate-limited', `at most ${this.rate.requests} forwards per ${this.rate.perSeconds} s per peer`);
    }
    const mine = this.perPeer.get(from) ?? 0;
    if (mine >= this.maxPerPeer) return refuse('busy', `at most ${this.maxPerPeer} forwards of one peer at once`);
    this.perPeer.set(from, mine + 1);
    try {
      const result = await this.queue.add(
        () =>
          this.components.client.infer(miner, params, { timeoutMs: this.timeoutMs, signal, keepInconsistent: true }),
        { signal },
      );
      this.count('forwarded');
      return result;
    } catch (err) {
      if (err instanceof QueueFullError) return refuse('busy', 'this node forwards as much as it can; try another');
      this.count('failed');
      const e = err instanceof RpcError ? err : new RpcError('internal', (err as Error).message);
      const code = PASSED_ON.includes(e.code) ? e.code : 'internal';
      throw new RpcError(code, `the miner did not answer: ${e.code}: ${e.message}`.slice(0, 400));
    } finally {
      const left = (this.perPeer.get(from) ?? 1) - 1;
      if (left > 0) this.perPeer.set(from, left);
      else this.perPeer.delete(from);
    }
  }

  /**
   * Ask `forwarder` to send `params` to `miner`, and return the miner's answer once it checks out: signed by
   * `miner` over exactly these params (its tokens are not checked against its candidates here: an answer that
   * fails that is proof against the miner, which the validator wants). Anything else rejects with RpcError.
   */
  async through(
    forwarder: string,
    miner: string,
    params: GenerateParams,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<GenerateResult> {
    const raw = await this.components.rpc.call(forwarder, FORWARD_METHOD, { miner, params } as Json, {
      protocol: PROTOCOLS.forward,
      timeoutMs: options.timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    // The request id is the forwarder's, unknown here: the params hash binds the answer to this challenge.
    const requestId = (raw as { requestId?: unknown } | null)?.requestId;
    const problem = await checkResult(raw, {
      miner,
      requestId: typeof requestId === 'string' ? requestId : '',
      params,
      skipStageOne: true,
    });
    if (problem) throw new RpcError('bad-frame', `the forwarded answer was refused: ${problem}`);
    return raw as GenerateResult;
  }

  private count(what: keyof ForwardState): void {
    const s = this.state.get();
    this.state.update({ [what]: s[what] + 1 });
  }
}
