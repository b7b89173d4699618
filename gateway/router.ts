/**
 * Which miner answers a request, and what happens when it does not.
 *
 * - **Choice.** The subnet's miners in the client's order (connected first, then by last epoch's incentive), each
 *   pushed down one place per `latencyStepMs` of its measured time to first token (an average over its recent
 *   answers); a miner with fewer requests in flight from this gateway always comes first, so concurrent requests
 *   spread over miners. At most `perMiner` requests go to one miner at once (its own queue's size): beyond that,
 *   requests wait here in order, and are never refused while some miner could take them.
 * - **Failure.** A miner that is busy is left alone for a moment; one that fails, stalls (no text for `stallMs`)
 *   or answers something that does not check out is not asked again for this request, and is avoided by others
 *   for `penaltyMs`. The request moves to the next miner until its deadline.
 * - **Hedging.** When the first miner has given no text after a few times its usual time to first token, a
 *   second one starts on a free miner; the first to give text leads and the other is cancelled.
 * - **Resuming.** When the miner leading a stream fails midway, the next one generates again and its text is
 *   passed on only past what was already sent, and only while it agrees with it (greedy and seeded generation
 *   are deterministic on every honest miner, so it does).
 * - **Cancelling.** Aborting the request's signal (its HTTP client went away) cancels every attempt, and with it
 *   the miners' work.
 */
import type { SubnetConfig } from '../shared/ledger/config.ts';
import type { GenerateParams, GenerateResult } from '../shared/inference/protocol.ts';
import { RpcError } from '../shared/p2p/messages.ts';
import type { Client, MinerCandidate } from '../core/services/client.ts';
import { MINER_QUEUE_CAPACITY } from '../core/services/miner.ts';
import { ApiError } from './openai.ts';

export interface RouterOptions {
  perMiner: number;
  /** No text for this long (the first piece included) fails the attempt. */
  stallMs: number;
  /** A miner's time to first token that counts as one place down the list. */
  latencyStepMs: number;
  /** How long a miner that failed is avoided. */
  penaltyMs: number;
  /** How long a busy miner is left alone. */
  busyMs: number;
  /** The least wait before a hedged second attempt. */
  hedgeMinMs: number;
  /** Requests that may wait for a free miner; more are refused with 503. */
  maxWaiting: number;
}

export const DEFAULT_ROUTER_OPTIONS: RouterOptions = {
  perMiner: MINER_QUEUE_CAPACITY,
  stallMs: 20_000,
  latencyStepMs: 500,
  penaltyMs: 10_000,
  busyMs: 500,
  hedgeMinMs: 1000,
  maxWaiting: 256,
};

export interface RouterComponents {
  client: Pick<Client, 'candidates' | 'infer'>;
}

/** What the router has seen of one miner. */
interface MinerStats {
  inFlight: number;
  /** Average time to first token, ms (exponential, the last answer weighing 0.3), or null before any. */
  ttftMs: number | null;
  /** Not chosen before this time (after a failure or a busy answer). */
  avoidUntil: number;
  answered: number;
  failed: number;
}

export interface Routed {
  result: GenerateResult;
  /** Miners that failed this request before one answered, and why. */
  tried: { miner: string; reason: string }[];
  ttftMs: number | null;
}

export interface RouteRequest {
  signal: AbortSignal;
  /** When to give up (ms since epoch): then 504. */
  deadline: number;
  /** Text as it arrives, and the miner it comes from: only ever what follows what was passed before. */
  onText?: (text: string, miner: string) => void;
}

const reasonOf = (err: unknown) =>
  err instanceof RpcError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);

export class MinerRouter {
  private readonly stats = new Map<string, MinerStats>();
  private readonly waiting: (() => void)[] = [];
  private readonly options: RouterOptions;

  constructor(
    private readonly components: RouterComponents,
    options: Partial<RouterOptions> = {},
  ) {
    this.options = { ...DEFAULT_ROUTER_OPTIONS, ...options };
  }

  /** Whether `subnet` has any miner the client could ask. */
  hasMiners(subnet: SubnetConfig): boolean {
    return this.components.client.candidates(subnet).length > 0;
  }

  /** Per-miner numbers, for /metrics and the README's table. */
  snapshot(): { miner: string; inFlight: number; ttftMs: number | null; answered: number; failed: number }[] {
    return [...this.stats].map(([miner, s]) => ({ miner, ...s }));
  }

  get queued(): number {
    return this.waiting.length;
  }

  private statsOf(miner: string): MinerStats {
    let s = this.stats.get(miner);
    if (!s) this.stats.set(miner, (s = { inFlight: 0, ttftMs: null, avoidUntil: 0, answered: 0, failed: 0 }));
    return s;
  }

  /** Miners that could take a request now, best first; `skip` are the ones this request already tried. */
  private free(subnet: SubnetConfig, skip: ReadonlySet<string>): MinerCandidate[] {
    const now = Date.now();
    const { perMiner, latencyStepMs } = this.options;
    const known = [...this.stats.values()].map((s) => s.ttftMs).filter((t): t is number => t !== null);
    const usual = known.length > 0 ? known.sort((a, b) => a - b)[Math.floor(known.length / 2)]! : 0;
    return this.components.client
      .candidates(subnet)
      .map((c, rank) => {
        const s = this.statsOf(c.hotkey);
        return { c, s, score: rank + (s.ttftMs ?? usual) / latencyStepMs };
      })
      .filter(({ c, s }) => !skip.has(c.hotkey) && s.inFlight < perMiner && s.avoidUntil <= now)
      .sort((a, b) => a.s.inFlight - b.s.inFlight || a.score - b.score)
      .map(({ c }) => c);
  }

  /** Take a slot on the best free miner, waiting in line for one; null when nobody could ever take it. */
  private async acquire(subnet: SubnetConfig, skip: ReadonlySet<string>, req: RouteRequest): Promise<string | null> {
    for (;;) {
      const [best] = this.free(subnet, skip);
      if (best) {
        this.statsOf(best.hotkey).inFlight++;
        return best.hotkey;
      }
      const all = this.components.client.candidates(subnet).filter((c) => !skip.has(c.hotkey));
      if (all.length === 0) return null;
      if (this.waiting.length >= this.options.maxWaiting)
        throw new ApiError(
          503,
          'Every miner is busy and the queue is full; retry shortly.',
          'server_error',
          'overloaded',
          null,
          5,
        );
      // Wait for a slot to free, a penalty or busy pause to end, or the deadline.
      const soonest = Math.min(...all.map((c) => this.statsOf(c.hotkey).avoidUntil).filter((t) => t > Date.now()));
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          req.signal.removeEventListener('abort', wake);
          const at = this.waiting.indexOf(wake);
          if (at >= 0) this.waiting.splice(at, 1);
          resolve();
        };
        const timer = setTimeout(wake, Math.max(10, Math.min(req.deadline, soonest) - Date.now()));
        req.signal.addEventListener('abort', wake, { once: true });
        this.waiting.push(wake);
      });
      if (req.signal.aborted) throw new ApiError(499, 'The client closed the request.', 'cancelled');
      if (Date.now() >= req.deadline) throw timeout(skip.size);
    }
  }

  private release(miner: string): void {
    this.statsOf(miner).inFlight--;
    this.waiting[0]?.();
  }

  /** Generate `params` on the subnet's miners until one answers, the deadline passes or the caller leaves. */
  async generate(subnet: SubnetConfig, params: GenerateParams, req: RouteRequest): Promise<Routed> {
    const tried: Routed['tried'] = [];
    const skip = new Set<string>();
    let sent = '';
    for (;;) {
      if (req.signal.aborted) throw new ApiError(499, 'The client closed the request.', 'cancelled');
      if (Date.now() >= req.deadline) throw timeout(tried.length);
      const first = await this.acquire(subnet, skip, req);
      if (first === null) {
        if (tried.length === 0)
          throw new ApiError(
            503,
            `No miner of ${params.model} is reachable right now.`,
            'server_error',
            'no_miner',
            null,
            10,
          );
        throw new ApiError(
          503,
          `Every reachable miner of ${params.model} failed: ${tried.map((t) => t.reason).join('; ')}.`,
          'server_error',
          'miners_failed',
          null,
          5,
        );
      }
      const outcome = await this.race(subnet, first, params, req, skip, sent, (text, miner) => {
        sent += text;
        req.onText?.(text, miner);
      });
      tried.push(...outcome.failures);
      if (outcome.result) return { result: outcome.result, tried, ttftMs: outcome.ttftMs };
    }
  }

  /**
   * Run `first` (and maybe a hedged second attempt) until one answers or all fail. Text an attempt gives is
   * passed on past `sent` once that attempt leads, and only while it agrees with what was sent.
   */
  private race(
    subnet: SubnetConfig,
    first: string,
    params: GenerateParams,
    req: RouteRequest,
    skip: Set<string>,
    sent: string,
    emit: (text: string, miner: string) => void,
  ): Promise<{ result: GenerateResult | null; failures: Routed['tried']; ttftMs: number | null }> {
    const failures: Routed['tried'] = [];
    const started = Date.now();
    let leader: string | null = null;
    let ttftMs: number | null = null;
    let running = 0;
    let settled = false;
    const controllers = new Map<string, AbortController>();

    return new Promise((resolve) => {
      const finish = (result: GenerateResult | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(hedge);
        for (const c of controllers.values()) c.abort();
        resolve({ result, failures, ttftMs });
      };
      const start = (miner: string) => {
        skip.add(miner);
        running++;
        const controller = new AbortController();
        controllers.set(miner, controller);
        const signal = AbortSignal.any([controller.signal, req.signal]);
        const stats = this.statsOf(miner);
        const t0 = Date.now();
        let text = '';
        let stall = setTimeout(
          () => controller.abort(new Error(`no text for ${this.options.stallMs} ms`)),
          this.options.stallMs,
        );
        const onText = (piece: string) => {
          if (settled || controller.signal.aborted) return;
          clearTimeout(stall);
          stall = setTimeout(
            () => controller.abort(new Error(`no text for ${this.options.stallMs} ms`)),
            this.options.stallMs,
          );
          if (text === '') {
            const ms = Date.now() - t0;
            stats.ttftMs = stats.ttftMs === null ? ms : 0.7 * stats.ttftMs + 0.3 * ms;
          }
          text += piece;
          if (leader === null) {
            leader = miner;
            ttftMs = Date.now() - started;
            clearTimeout(hedge);
            for (const [other, c] of controllers)
              if (other !== miner) c.abort(new Error('another miner answered first'));
          }
          if (leader !== miner) return;
          // Agree with what was sent before, then pass on only what is new.
          const common = Math.min(text.length, sent.length);
          if (text.slice(0, common) !== sent.slice(0, common)) {
            controller.abort(new Error('its text differs from what an earlier miner already streamed'));
            return;
          }
          if (text.length > sent.length) {
            const fresh = text.slice(sent.length);
            sent = text;
            emit(fresh, miner);
          }
        };
        this.components.client
          .infer(miner, params, { signal, onText, timeoutMs: Math.max(1, req.deadline - Date.now()) })
          .then((result) => {
            if (controller.signal.aborted) throw controller.signal.reason ?? new Error('aborted');
            // What was streamed must agree with the signed text (which ends before a stop string the stream held).
            if (!sent.startsWith(result.text) && !result.text.startsWith(sent))
              throw new Error('its signed text differs from what was streamed');
            stats.answered++;
            if (leader === null) {
              leader = miner;
              ttftMs = Date.now() - started;
            }
            if (leader === miner) finish(result);
          })
          .catch((err: unknown) => {
            const reason = controller.signal.aborted ? reasonOf(controller.signal.reason) : reasonOf(err);
            if (req.signal.aborted || settled) return;
            if (reason === 'another miner answered first') return;
            const busy = err instanceof RpcError && err.code === 'busy';
            stats.avoidUntil = Date.now() + (busy ? this.options.busyMs : this.options.penaltyMs);
            if (busy)
              skip.delete(miner); // worth asking again once its queue moves
            else stats.failed++;
            failures.push({ miner, reason });
            if (leader === miner) leader = null;
          })
          .finally(() => {
            clearTimeout(stall);
            running--;
            this.release(miner);
            if (!settled && running === 0) finish(null);
          });
      };

      start(first);
      // The hedge: a second miner once the first has been silent for a few times its usual first token.
      const firstTtft = this.statsOf(first).ttftMs;
      const hedge = setTimeout(
        () => {
          if (settled || leader !== null || sent.length > 0) return;
          const [second] = this.free(subnet, skip);
          if (!second) return;
          this.statsOf(second.hotkey).inFlight++;
          start(second.hotkey);
        },
        Math.max(this.options.hedgeMinMs, 3 * (firstTtft ?? this.options.hedgeMinMs)),
      );
    });
  }
}

const timeout = (tried: number) =>
  new ApiError(504, `No miner answered in time${tried > 0 ? ` (${tried} tried)` : ''}.`, 'server_error', 'timeout');
