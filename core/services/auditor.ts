/**
 * Audits of users' answers: a client hands answers it got to the subnet's permitted validators (`validator.audit`
 * on `/webtensor/audit/1`), who check them as they check their own challenges (both stages) and count a wrong
 * answer against the miner. The gateway hands in a sample of what it serves (`--audit-rate`); a tab hands in its
 * Ask answers when its user opts in. A miner cannot tell a user's request from a check, nor know which answers are
 * audited, so cheating users costs it incentive.
 *
 * The answer is the miner's signed result over exactly the params it was asked (paramsHash): a gateway can hand
 * in only what the miner really answered. At most QUEUE_LIMIT answers wait; more are dropped, never buffered.
 */
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import {
  auditVerdictSchema,
  type AuditVerdict,
  type GenerateParams,
  type GenerateResult,
} from '../../shared/inference/protocol.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import type { RpcRouter } from './rpc.ts';
import { Store, type ReadableStore } from '../store.ts';
import { AUDIT_GLOBAL_INTERVAL_S } from './validator.ts';

export const QUEUE_LIMIT = 16;
/**
 * Times an answer is handed in again, when every validator refused it as busy (its line full) or none is known yet,
 * before it fails.
 */
export const BUSY_RETRIES = 5;
/** How long a validator may take to check an answer, waiting in its line (AUDIT_QUEUE answers) included. */
export const AUDIT_TIMEOUT_MS = 90_000;
/** Refusals that mean "not now": the answer is handed in again later. */
const RETRYABLE: readonly string[] = ['busy', 'rate-limited'];

export interface AuditState {
  /** Answers sampled, sent and judged, judged wrong, not judged (every validator refused or failed), dropped. */
  sampled: number;
  correct: number;
  wrong: number;
  failed: number;
  dropped: number;
  /** The last verdicts, newest last (at most 20), with the request each answered. */
  recent: (AuditVerdict & { validator: string; model: string; requestId: string })[];
  /** The last answers no validator checked (at most 20), newest last, with why. */
  unchecked: { requestId: string; reason: string }[];
}

export interface AuditorComponents {
  rpc: Pick<RpcRouter, 'call'>;
  snapshot: ReadableStore<LedgerSnapshot | null> | null;
}

export interface AuditorInit {
  /** The share of answers audited, 0 to 1. */
  rate: number;
  random?: () => number;
  onVerdict?: (v: AuditState['recent'][number]) => void;
  onFailure?: (reason: string) => void;
}

export class Auditor {
  readonly state = new Store<AuditState>({
    sampled: 0,
    correct: 0,
    wrong: 0,
    failed: 0,
    dropped: 0,
    recent: [],
    unchecked: [],
  });
  private readonly queue: { netuid: number; params: GenerateParams; result: GenerateResult; tries: number }[] = [];
  private pumping = false;
  private stopped = false;

  constructor(
    private readonly components: AuditorComponents,
    private readonly init: AuditorInit,
  ) {}

  /** An answer this node got on subnet `netuid`: audited with probability `rate`. Resolves whether it was queued. */
  offer(netuid: number, params: GenerateParams, result: GenerateResult): boolean {
    if (this.stopped || (this.init.random ?? Math.random)() >= this.init.rate) return false;
    const s = this.state.get();
    if (this.queue.length >= QUEUE_LIMIT) {
      this.state.update({ dropped: s.dropped + 1 });
      return false;
    }
    this.state.update({ sampled: s.sampled + 1 });
    this.queue.push({ netuid, params, result, tries: 0 });
    void this.pump();
    return true;
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
  }

  /** The subnet's validators with a permit, in random order (the miner answered; it is not one of them). */
  private validators(netuid: number, miner: string): string[] {
    const sub = this.components.snapshot?.get()?.subnets.find((s) => s.netuid === netuid);
    const permitted = (sub?.uids ?? [])
      .filter((u, uid) => u.role === 'validator' && sub!.permits[uid] && u.hotkey !== miner)
      .map((u) => u.hotkey);
    return permitted
      .map((v) => ({ v, k: (this.init.random ?? Math.random)() }))
      .sort((a, b) => a.k - b.k)
      .map(({ v }) => v);
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let next = this.queue.shift(); next && !this.stopped; next = this.queue.shift()) await this.send(next);
    } finally {
      this.pumping = false;
    }
  }

  /** Hand one answer to the first validator that takes it; when every one is busy, wait a moment and try again. */
  private async send(answer: (typeof this.queue)[number]): Promise<void> {
    const { netuid, params, result } = answer;
    const reasons: string[] = [];
    let allBusy = true;
    const validators = this.validators(netuid, result.miner);
    for (const validator of validators) {
      if (this.stopped) return;
      try {
        const raw = await this.components.rpc.call(
          validator,
          'validator.audit',
          { params, result } as unknown as Json,
          { protocol: PROTOCOLS.audit, timeoutMs: AUDIT_TIMEOUT_MS },
        );
        const verdict = auditVerdictSchema.parse(raw);
        const entry = { ...verdict, validator, model: params.model, requestId: result.requestId };
        const s = this.state.get();
        this.state.update({
          correct: s.correct + (verdict.verdict === 'correct' ? 1 : 0),
          wrong: s.wrong + (verdict.verdict === 'wrong' ? 1 : 0),
          recent: [...s.recent, entry].slice(-20),
        });
        this.init.onVerdict?.(entry);
        return;
      } catch (err) {
        if (!(err instanceof RpcError && RETRYABLE.includes(err.code))) allBusy = false;
        reasons.push(`${validator}: ${(err as Error).message}`);
      }
    }
    // Every validator's line was full (others' answers: a gateway's, other clients'), or none is known yet (a tab
    // that just started may still be syncing the ledger): not a failure yet. Wait a few audits' time, drawn so that
    // two clients refused together do not come back together, and go first.
    if (allBusy && answer.tries < BUSY_RETRIES && !this.stopped) {
      const random = this.init.random ?? Math.random;
      await new Promise((r) => setTimeout(r, AUDIT_GLOBAL_INTERVAL_S * 1000 * (1 + 3 * random())));
      this.queue.unshift({ ...answer, tries: answer.tries + 1 });
      return;
    }
    const reason = reasons.length > 0 ? reasons.join('; ') : 'no validator with a permit is known on this subnet';
    const s = this.state.get();
    this.state.update({
      failed: s.failed + 1,
      unchecked: [...s.unchecked, { requestId: result.requestId, reason }].slice(-20),
    });
    this.init.onFailure?.(reason);
  }
}
