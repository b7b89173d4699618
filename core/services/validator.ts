/**
 * The validator loop (docs/validator.md): challenge the subnet's miners one at a time with seeded prompts, check each
 * answer against this node's own run of the pinned model (token ids, and the model hash), score correctness x
 * speed x availability with an EMA, commit the weights in an epoch's first half and reveal them in the second
 * half of the next epoch, once the epoch that holds the commit is final. `copy-weights` (test profile only) makes it copy another validator's last revealed weights instead.
 */
import type { SubnetConfig } from '../../shared/ledger/config.ts';
import { weightsCommitHash } from '../../shared/ledger/state.ts';
import type { Generation } from '../../shared/inference/engine.ts';
import { RateLimiter } from '@libp2p/utils';
import {
  auditRequestSchema,
  checkResult,
  type AuditVerdict,
  type GenerateParams,
  type GenerateResult,
} from '../../shared/inference/protocol.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import { answerScore, challengePrompt, ema, weightsFromScores, type Outcome } from '../../shared/validator/scoring.ts';
import { Store } from '../store.ts';
import type { Consensus } from './consensus.ts';
import type { RecordBook } from './record-book.ts';

export const CHALLENGE_TOKENS = 16;
export const CHALLENGE_DEADLINE_MS = 8000;
/** Audits a validator takes from one peer: one per this many seconds (each costs a generation). */
export const AUDIT_INTERVAL_S = 5;
/**
 * And from everyone together: one per this many seconds, so that many keys handing in answers cannot turn the
 * validator's model (shared with its own challenges) into an audit server.
 */
export const AUDIT_GLOBAL_INTERVAL_S = 2;

export interface MinerScore {
  uid: number;
  hotkey: string;
  score: number;
  challenges: number;
  correct: number;
  last: Outcome | null;
  latencyMs: number | null;
  history: number[];
}

export interface ValidatorState {
  running: boolean;
  netuid: number;
  scores: MinerScore[];
  inFlight: { uid: number; prompt: string; startedAt: number } | null;
  challenges: number;
  committed: { epoch: number; uids: number[]; values: number[] } | null;
  revealed: { epoch: number; uids: number[]; values: number[] } | null;
  /** Signed answers others handed in to check (validator.audit): checked, found wrong, refused unchecked. */
  audits: { checked: number; wrong: number; refused: number };
  lastError: string | null;
}

export interface ValidatorComponents {
  consensus: Pick<Consensus, 'snapshot' | 'uidOf' | 'currentBlock'>;
  book: Pick<RecordBook, 'publish' | 'self'>;
  subnet: SubnetConfig;
  /** Test networks only: copy another validator's weights instead of scoring. */
  fault: 'copy-weights' | null;
  infer(peer: string, params: GenerateParams, opts: { timeoutMs: number }): Promise<GenerateResult>;
  generateLocally(params: GenerateParams): Promise<Generation>;
}

const randomSalt = () =>
  Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');

export class Validator {
  readonly state: Store<ValidatorState>;
  private timer: ReturnType<typeof setInterval> | null = null;
  private busy = false;
  private next = 0;
  private counter = 0;
  /** Commits by epoch, each revealed in the epoch after its own. */
  private readonly pending = new Map<number, { uids: number[]; values: number[]; salt: string }>();
  private readonly auditLimiter = new RateLimiter({ points: 1, duration: AUDIT_INTERVAL_S });
  private readonly allAudits = new RateLimiter({ points: 1, duration: AUDIT_GLOBAL_INTERVAL_S });
  private auditing = false;

  constructor(private readonly deps: ValidatorComponents) {
    this.state = new Store<ValidatorState>({
      running: false,
      netuid: deps.subnet.netuid,
      scores: [],
      inFlight: null,
      challenges: 0,
      committed: null,
      revealed: null,
      audits: { checked: 0, wrong: 0, refused: 0 },
      lastError: null,
    });
  }

  private update(patch: Partial<ValidatorState>) {
    this.state.update(patch);
  }

  get self(): string {
    return this.deps.book.self;
  }

  start() {
    if (this.timer) return;
    this.update({ running: true });
    this.timer = setInterval(() => void this.step(), 1000);
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.update({ running: false });
  }

  private async step() {
    if (this.busy) return;
    this.busy = true;
    try {
      await this.weightsDuty();
      await this.challengeNext();
    } catch (err) {
      this.update({ lastError: (err as Error).message });
    } finally {
      this.busy = false;
    }
  }

  private miners(): { uid: number; hotkey: string }[] {
    const sub = this.deps.consensus.snapshot.get()?.subnets.find((s) => s.netuid === this.deps.subnet.netuid);
    return (sub?.uids ?? [])
      .map((u, uid) => ({ uid, hotkey: u.hotkey, role: u.role }))
      .filter((u) => u.role === 'miner' && u.hotkey !== this.self);
  }

  private async challengeNext() {
    const miners = this.miners();
    if (miners.length === 0 || this.deps.consensus.uidOf(this.deps.subnet.netuid, this.self) === null) return;
    const target = miners[this.next++ % miners.length]!;
    const seed = (Date.now() & 0x7fffffff) ^ this.counter++;
    const prompt = challengePrompt(seed);
    const params: GenerateParams = { model: this.deps.subnet.model, prompt, maxNewTokens: CHALLENGE_TOKENS };
    this.update({ inFlight: { uid: target.uid, prompt, startedAt: Date.now() } });
    const expected = await this.deps.generateLocally(params);
    const start = performance.now();
    let outcome: Outcome;
    try {
      const answer = await this.deps.infer(target.hotkey, params, { timeoutMs: CHALLENGE_DEADLINE_MS });
      const same =
        answer.modelHash === this.deps.subnet.modelHash &&
        answer.tokenIds.length === expected.tokenIds.length &&
        answer.tokenIds.every((t, k) => t === expected.tokenIds[k]);
      outcome = same ? 'correct' : 'wrong';
    } catch (err) {
      outcome = err instanceof RpcError && err.code === 'timeout' ? 'timeout' : 'error';
      if (outcome === 'error') this.update({ lastError: `uid ${target.uid}: ${(err as Error).message}` });
    }
    this.record(target, outcome, performance.now() - start);
    this.update({ inFlight: null, challenges: this.state.get().challenges + 1 });
  }

  /** Fold one outcome for `target` into its score (EMA) and history. */
  private record(target: { uid: number; hotkey: string }, outcome: Outcome, latencyMs: number) {
    const sample = answerScore(outcome, latencyMs, CHALLENGE_DEADLINE_MS);
    const scores = this.state.get().scores.filter((s) => !(s.uid === target.uid && s.hotkey !== target.hotkey));
    const prev = scores.find((s) => s.uid === target.uid);
    const next: MinerScore = {
      uid: target.uid,
      hotkey: target.hotkey,
      score: ema(prev?.score, sample),
      challenges: (prev?.challenges ?? 0) + 1,
      correct: (prev?.correct ?? 0) + (outcome === 'correct' ? 1 : 0),
      last: outcome,
      latencyMs: outcome === 'correct' ? latencyMs : null,
      history: [...(prev?.history ?? []), sample].slice(-50),
    };
    this.update({ scores: [...scores.filter((s) => s.uid !== target.uid), next].sort((a, b) => a.uid - b.uid) });
  }

  /**
   * Check a miner's signed answer that `from` (a gateway, a client) hands in: it must be this subnet's, signed by
   * a registered miner over exactly these params, and not cancelled; then this node generates the same params on
   * the pinned model and compares token ids. A wrong answer counts against the miner like a wrong challenge; a
   * correct one changes nothing (who hands answers in cannot raise a miner's score). One audit at a time, one
   * per AUDIT_INTERVAL_S per peer and one per AUDIT_GLOBAL_INTERVAL_S in all, so handing in answers (from any
   * number of keys) cannot make this node do unbounded work.
   */
  async audit(raw: unknown, from: string): Promise<AuditVerdict> {
    const refuse = (code: 'bad-params' | 'busy' | 'rate-limited', message: string): never => {
      const audits = this.state.get().audits;
      this.update({ audits: { ...audits, refused: audits.refused + 1 } });
      throw new RpcError(code, message);
    };
    const parsed = auditRequestSchema.safeParse(raw);
    if (!parsed.success)
      return refuse('bad-params', `the audit is malformed at ${parsed.error.issues[0]!.path.join('.')}`);
    const { params, result } = parsed.data;
    if (!this.timer) return refuse('busy', 'this validator is not running');
    if (params.model !== this.deps.subnet.model || result.model !== params.model)
      return refuse('bad-params', `this validator checks ${this.deps.subnet.model} only`);
    if (result.finish === 'cancelled') return refuse('bad-params', 'a cancelled answer cannot be checked');
    const problem = await checkResult(result, { miner: result.miner, requestId: result.requestId, params });
    if (problem) return refuse('bad-params', `the answer does not check out: ${problem}`);
    const target = this.miners().find((m) => m.hotkey === result.miner);
    if (!target) return refuse('bad-params', `${result.miner} is not a miner of subnet ${this.deps.subnet.netuid}`);
    try {
      this.auditLimiter.consume(from);
    } catch {
      return refuse('rate-limited', `one audit per ${AUDIT_INTERVAL_S} s per peer`);
    }
    if (this.auditing) return refuse('busy', 'an audit is running; try again shortly');
    try {
      this.allAudits.consume('all');
    } catch {
      return refuse('busy', `this validator takes one audit per ${AUDIT_GLOBAL_INTERVAL_S} s; try again shortly`);
    }
    this.auditing = true;
    try {
      const expected = await this.deps.generateLocally(params);
      const same =
        result.modelHash === this.deps.subnet.modelHash &&
        result.tokenIds.length === expected.tokenIds.length &&
        result.tokenIds.every((t, k) => t === expected.tokenIds[k]);
      const audits = this.state.get().audits;
      this.update({ audits: { ...audits, checked: audits.checked + 1, wrong: audits.wrong + (same ? 0 : 1) } });
      if (!same) this.record(target, 'wrong', 0);
      return { verdict: same ? 'correct' : 'wrong', miner: target.hotkey, uid: target.uid };
    } finally {
      this.auditing = false;
    }
  }

  /** Commit in an epoch's first half, reveal the same weights in its second half. */
  /**
   * Commit in an epoch's first half; reveal that commit in the second half of the next epoch (by then the
   * epoch that holds the commit is final, so nobody can commit a copy after seeing the reveal).
   */
  private async weightsDuty() {
    const { tempo, netuid } = this.deps.subnet;
    const block = this.deps.consensus.currentBlock();
    const epoch = Math.floor(block / tempo);
    const offset = block % tempo;
    const uid = this.deps.consensus.uidOf(netuid, this.self);
    if (uid === null) return;
    // Leave a block of margin at each window's edge, so the record lands in the window on every node.
    if (offset >= 1 && offset < tempo / 2 - 1 && !this.pending.has(epoch) && this.permitted(uid)) {
      // Weights only once every current miner has been challenged: otherwise an unseen miner would get nothing.
      const seen = new Set(this.state.get().scores.map((m) => `${m.uid}/${m.hotkey}`));
      if (!this.miners().every((m) => seen.has(`${m.uid}/${m.hotkey}`))) return;
      const weights = this.deps.fault === 'copy-weights' ? this.copiedWeights() : this.ownWeights();
      if (!weights || weights.uids.length === 0) return;
      const salt = randomSalt();
      await this.deps.book.publish('weights.commit', {
        netuid,
        hash: weightsCommitHash({ netuid, uids: weights.uids, values: weights.values, salt }),
      });
      this.pending.set(epoch, { ...weights, salt });
      for (const e of this.pending.keys()) if (e < epoch - 1) this.pending.delete(e);
      this.update({ committed: { epoch, ...weights } });
    } else if (
      offset > tempo / 2 &&
      offset < tempo - 1 &&
      this.pending.has(epoch - 1) &&
      this.finalThrough(epoch - 1)
    ) {
      const { uids, values, salt } = this.pending.get(epoch - 1)!;
      this.pending.delete(epoch - 1);
      await this.deps.book.publish('weights.reveal', { netuid, uids, values, salt });
      this.update({ revealed: { epoch: epoch - 1, uids, values } });
    }
  }

  /**
   * Whether `epoch` is final: a reveal counts only then, and revealing before would make the weights public for
   * nothing (they stay secret, and the previous weights stand, until a later commit is revealed).
   */
  private finalThrough(epoch: number): boolean {
    return (this.deps.consensus.snapshot.get()?.lastFinal ?? -1) >= epoch;
  }

  /** Whether this UID holds a validator permit (set when the last epoch closed). */
  private permitted(uid: number): boolean {
    const sub = this.deps.consensus.snapshot.get()?.subnets.find((s) => s.netuid === this.deps.subnet.netuid);
    return sub?.permits[uid] ?? false;
  }

  private ownWeights() {
    const live = new Set(this.miners().map((m) => `${m.uid}/${m.hotkey}`));
    const scores = new Map(
      this.state
        .get()
        .scores.filter((s) => live.has(`${s.uid}/${s.hotkey}`))
        .map((s) => [s.uid, s.score] as const),
    );
    return weightsFromScores(scores);
  }

  /** The weight copier: the highest-stake other validator's last revealed weights, as the ledger shows them. */
  private copiedWeights() {
    const snap = this.deps.consensus.snapshot.get();
    const sub = snap?.subnets.find((s) => s.netuid === this.deps.subnet.netuid);
    if (!snap || !sub) return null;
    const others = sub.uids
      .map((u, uid) => ({ uid, hotkey: u.hotkey, w: sub.weights[uid], stake: snap.stakes[u.hotkey] ?? 0n }))
      .filter((u) => u.hotkey !== this.self && u.w)
      .sort((a, b) => (a.stake === b.stake ? 0 : a.stake > b.stake ? -1 : 1));
    const w = others[0]?.w;
    return w ? { uids: [...w.uids], values: [...w.values] } : null;
  }
}
