/**
 * The validator loop (docs/validator.md): challenge the subnet's miners one at a time with requests drawn like
 * users' (shared/validator/challenges.ts), each sent through a connected peer drawn at random (forward.ts), so the
 * miner sees a client's key, and directly when no peer forwards or the forwarder fails (which never counts against
 * the miner); check every answer's tokens against its signed candidates (stage 1), audit a random half against
 * this node's own teacher-forced pass of the pinned model (stage 2), score correctness x speed x availability with
 * an EMA, and zero a miner caught lying for PENALTY_CHALLENGES challenges. Commit the weights in an epoch's first
 * half and reveal them in the second half of the next epoch, once the epoch that holds the commit is final.
 * `copy-weights` (test profile only) makes it copy another validator's last revealed weights.
 */
import type { SubnetConfig } from '../../shared/ledger/config.ts';
import { weightsCommitHash } from '../../shared/ledger/state.ts';
import type { Reference } from '../../shared/inference/engine.ts';
import { DEFAULT_AUDIT_THRESHOLDS, type AuditThresholds } from '../../shared/inference/audit-stats.ts';
import { Queue, QueueFullError } from '@libp2p/utils';
import {
  auditRequestSchema,
  checkResult,
  type AuditVerdict,
  type GenerateParams,
  type GenerateResult,
} from '../../shared/inference/protocol.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import { answerScore, ema, weightsFromScores, type Outcome } from '../../shared/validator/scoring.ts';
import { challengeParams, cryptoRandom, type Random } from '../../shared/validator/challenges.ts';
import { chooseForwarder, registeredKeys } from '../../shared/validator/forwarders.ts';
import { judgeStageOne, judgeStageTwo } from '../../shared/validator/judge.ts';
import { Store } from '../store.ts';
import type { Consensus } from './consensus.ts';
import type { RecordBook } from './record-book.ts';

/** A challenge's deadline: a base plus a time per token asked for (challenges ask for 8 to 128 tokens). */
export const challengeDeadlineMs = (maxNewTokens: number) => 4000 + 60 * maxNewTokens;
/**
 * A forwarded challenge's extra time over the deadline: the second hop, and the forwarder's connection to the
 * miner (on demand, as for a user). A forwarded answer's speed is scored against the deadline plus this.
 */
export const FORWARD_GRACE_MS = 3000;
/** Forwarders a challenge is tried through (each with a fresh draw) before it goes to the miner directly. */
export const FORWARD_TRIES = 2;
/**
 * A forwarder that failed is left out for this long: for every miner when the failure is its own (it refused, or
 * handed back an answer that does not check out), for that miner alone otherwise (a timeout or an error it says
 * the miner gave: the miner may be the one at fault, and one bad miner must not keep honest forwarders out).
 */
export const FORWARDER_BACKOFF_MS = 60_000;
/** Failures through a forwarder that are the forwarder's own doing (or its refusal), not the miner's. */
const FORWARDERS_OWN: readonly string[] = ['bad-frame', 'bad-params', 'rate-limited', 'unknown-method', 'bad-schema'];
/** The share of challenge answers audited in depth (stage 2); every answer gets stage 1. */
export const AUDIT_SHARE = 0.5;
/**
 * Challenges a miner scores 0 for after an answer is proven wrong. With AUDIT_SHARE, one cheated answer costs in
 * expectation AUDIT_SHARE x PENALTY_CHALLENGES = 10 answers' score for at most one answer's saving: cheating, even
 * now and then, does not pay (docs/validator.md).
 */
export const PENALTY_CHALLENGES = 20;
/**
 * Answers handed in to audit wait in line, at most this many, one per peer: each peer's next answer takes its turn
 * after everyone else's already waiting (a gateway auditing every answer cannot keep a tab's out). Beyond it, busy.
 */
export const AUDIT_QUEUE = 8;
/**
 * Audits start at least this many seconds apart, so that many keys handing in answers cannot turn the validator's
 * model (shared with its own challenges) into an audit server.
 */
export const AUDIT_GLOBAL_INTERVAL_S = 2;
/** Audited answers remembered so that the same one handed in again counts nothing (about 2.3 h of audits). */
export const JUDGED_ANSWERS = 4096;

export interface MinerScore {
  uid: number;
  hotkey: string;
  score: number;
  challenges: number;
  correct: number;
  last: Outcome | null;
  latencyMs: number | null;
  history: number[];
  /** Answers audited in depth (stage 2), and answers proven wrong (stage 1 or 2). */
  audited: number;
  wrong: number;
  /** Challenges left that score 0 after the last answer proven wrong. */
  penaltyLeft: number;
  /**
   * Answers that came through a forwarder (the miner saw a client's key, not this validator's), and forwarders that
   * failed on its challenges (refused, timed out, altered or dropped the answer): those are never scored against the
   * miner (its challenge was drawn again and sent through another forwarder, or directly).
   */
  forwarded: number;
  forwardFailures: number;
  /** Why the last answer that did not count was refused: wrong (which check, why), an error or a timeout. */
  lastProblem: string | null;
}

export interface ValidatorState {
  running: boolean;
  netuid: number;
  scores: MinerScore[];
  /** The challenge out now, and the peer forwarding it (null: sent directly). */
  inFlight: { uid: number; prompt: string; startedAt: number; via: string | null } | null;
  challenges: number;
  /**
   * How challenges went out: answered through a forwarder, sent directly (no forwarder qualified, or FORWARD_TRIES
   * failed), forwarders that failed (not counted against the miner), and the last such failure.
   */
  forwarding: { forwarded: number; direct: number; failed: number; lastFailure: string | null };
  committed: { epoch: number; uids: number[]; values: number[] } | null;
  revealed: { epoch: number; uids: number[]; values: number[] } | null;
  /** Signed answers others handed in to check (validator.audit): checked, found wrong, refused unchecked. */
  audits: { checked: number; wrong: number; refused: number };
  /** Stage-2 passes this node ran (challenges and handed-in answers) and the time they took in all. */
  deepChecks: { count: number; ms: number; failed: number };
  lastError: string | null;
}

export interface ValidatorComponents {
  consensus: Pick<Consensus, 'snapshot' | 'uidOf' | 'currentBlock'>;
  book: Pick<RecordBook, 'publish' | 'self'>;
  subnet: SubnetConfig;
  /** Test networks only: copy another validator's weights instead of scoring. */
  fault: 'copy-weights' | null;
  infer(
    peer: string,
    params: GenerateParams,
    opts: { timeoutMs: number; keepInconsistent: boolean },
  ): Promise<GenerateResult>;
  /**
   * Send a challenge through `forwarder` (Forwarder.through, `/webtensor/forward/1`): the miner's answer, signed by
   * it over exactly `params`, or a rejection. Absent: every challenge goes directly.
   */
  forward?(
    forwarder: string,
    miner: string,
    params: GenerateParams,
    opts: { timeoutMs: number },
  ): Promise<GenerateResult>;
  /** Peers this node is connected to directly: whom a challenge may be forwarded through. */
  connectedPeers?(): readonly string[];
  /** This node's teacher-forced pass over `tokenIds` after `prompt` on the pinned model (engine.score). */
  scoreLocally(prompt: string, tokenIds: number[]): Promise<Reference>;
  /** The pinned model's token count of `prompt` and its context (engine.countTokens); absent: no fitting. */
  countLocally?(prompt: string): Promise<{ tokens: number; context: number | null }>;
  /** Where challenges and audit draws come from (default: crypto). */
  random?: Random;
  thresholds?: AuditThresholds;
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
  /** Audits waiting or running (one runs at a time), and the peers that handed them in. */
  private readonly audits = new Queue<AuditVerdict>({ concurrency: 1, maxSize: AUDIT_QUEUE });
  private readonly auditing = new Set<string>();
  private lastAuditStart = 0;
  /** Aborted by stop(): every answer still in line is refused (the queue's own abort leaves waiters hanging). */
  private auditsStopped = new AbortController();
  /**
   * Answers already audited (by signature), with their verdict: handing the same signed answer in again gets the
   * same verdict and counts nothing, so one wrong answer cannot keep a miner at zero. Bounded (JUDGED_ANSWERS,
   * oldest forgotten first): at the global pace of audits that is hours of them.
   */
  private readonly judgedAnswers = new Map<string, AuditVerdict>();
  /** Forwarders that failed, until when they are left out: by peer, or by `peer miner` pair. */
  private readonly avoid = new Map<string, number>();

  constructor(private readonly deps: ValidatorComponents) {
    this.state = new Store<ValidatorState>({
      running: false,
      netuid: deps.subnet.netuid,
      scores: [],
      inFlight: null,
      challenges: 0,
      forwarding: { forwarded: 0, direct: 0, failed: 0, lastFailure: null },
      committed: null,
      revealed: null,
      audits: { checked: 0, wrong: 0, refused: 0 },
      deepChecks: { count: 0, ms: 0, failed: 0 },
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
    if (this.auditsStopped.signal.aborted) this.auditsStopped = new AbortController();
    this.update({ running: true });
    this.timer = setInterval(() => void this.step(), 1000);
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.auditsStopped.abort(new RpcError('busy', 'this validator stopped'));
    this.update({ running: false });
  }

  private async step() {
    if (this.busy) return;
    this.busy = true;
    try {
      this.forgetMoved();
      await this.weightsDuty();
      await this.challengeNext();
    } catch (err) {
      this.update({ lastError: (err as Error).message });
    } finally {
      this.busy = false;
    }
  }

  /**
   * Drops the scores of miners no longer at their UID (deregistered, or registered again at another): each miner is
   * then listed once, at the UID it holds. (Weights already leave such scores out: ownWeights.)
   */
  private forgetMoved() {
    if (!this.deps.consensus.snapshot.get()) return;
    const live = new Set(this.miners().map((m) => `${m.uid}/${m.hotkey}`));
    const scores = this.state.get().scores;
    const kept = scores.filter((s) => live.has(`${s.uid}/${s.hotkey}`));
    if (kept.length < scores.length) this.update({ scores: kept });
  }

  private miners(): { uid: number; hotkey: string }[] {
    const sub = this.deps.consensus.snapshot.get()?.subnets.find((s) => s.netuid === this.deps.subnet.netuid);
    return (sub?.uids ?? [])
      .map((u, uid) => ({ uid, hotkey: u.hotkey, role: u.role }))
      .filter((u) => u.role === 'miner' && u.hotkey !== this.self);
  }

  /**
   * One challenge to the next miner in turn. Through a forwarder first (the miner sees a client's key), with a
   * fresh draw for each try: a forwarder that fails (refuses, times out, drops or alters the answer) proves nothing
   * about the miner, so nothing is recorded for it and the challenge is drawn again and sent through another one,
   * up to FORWARD_TRIES forwarders, then directly. Only a signed answer, or the failure of a direct challenge, is
   * scored. A fresh draw each time: a miner that stalls a request must not then see the same prompt come from the
   * validator (that would tell it which peer forwards), and one forwarder failing must not at once set off the
   * rare, recognisable direct challenge.
   */
  private async challengeNext() {
    const miners = this.miners();
    if (miners.length === 0 || this.deps.consensus.uidOf(this.deps.subnet.netuid, this.self) === null) return;
    const target = miners[this.next++ % miners.length]!;
    const random = this.deps.random ?? cryptoRandom;
    try {
      for (let tries = 0; ; tries++) {
        const params = await this.fitToContext(challengeParams(this.deps.subnet.model, random));
        if (!params) return; // a prompt the model cannot even hold: draw another next step
        const via = tries < FORWARD_TRIES ? this.forwarderFor(target.hotkey, random) : null;
        if (await this.challenge(target, params, via, random, tries)) break;
      }
      this.update({ challenges: this.state.get().challenges + 1 });
    } finally {
      this.update({ inFlight: null });
    }
  }

  /**
   * Send `params` to `target` through `via`, or directly when null, then judge and record the answer (after
   * `forwardFailures` forwarders failed on this challenge). False, with nothing recorded, when the forwarder failed.
   */
  private async challenge(
    target: { uid: number; hotkey: string },
    params: GenerateParams,
    via: string | null,
    random: Random,
    forwardFailures: number,
  ): Promise<boolean> {
    const deadline = challengeDeadlineMs(params.maxNewTokens);
    // The second hop gets more time; the answer's speed is scored against that.
    const allowed = via ? deadline + FORWARD_GRACE_MS : deadline;
    this.update({ inFlight: { uid: target.uid, prompt: params.prompt, startedAt: Date.now(), via } });
    const start = performance.now();
    let outcome: Outcome;
    let latencyMs: number;
    let deep = false;
    let problem: string | null;
    try {
      let answer: GenerateResult;
      if (via) {
        const forwarded = await this.throughForwarder(via, target, params, allowed);
        if (!forwarded) return false;
        answer = forwarded;
      } else {
        const f = this.state.get().forwarding;
        this.update({ forwarding: { ...f, direct: f.direct + 1 } });
        answer = await this.deps.infer(target.hotkey, params, { timeoutMs: deadline, keepInconsistent: true });
      }
      latencyMs = performance.now() - start;
      deep = random() < AUDIT_SHARE;
      problem = await this.judge(params, answer, deep);
      outcome = problem === null ? 'correct' : 'wrong';
    } catch (err) {
      latencyMs = performance.now() - start;
      outcome = err instanceof RpcError && err.code === 'timeout' ? 'timeout' : 'error';
      problem = (err as Error).message;
      if (outcome === 'error') this.update({ lastError: `uid ${target.uid}: ${problem}` });
    }
    this.record(target, outcome, latencyMs, allowed, deep, problem, { forwarded: via !== null, forwardFailures });
    return true;
  }

  /**
   * A peer to forward a challenge to `target` through, drawn at random (shared/validator/forwarders.ts): not the
   * miner, not a validator, a peer with no UID before a miner, none that failed in the last FORWARDER_BACKOFF_MS.
   * Null when forwarding is off, this validator holds no permit (forwarders would refuse it) or nobody qualifies.
   */
  private forwarderFor(target: string, random: Random): string | null {
    if (!this.deps.forward || !this.deps.connectedPeers) return null;
    // Forwarders serve permitted validators only: without a permit, asking would only be refused.
    const uid = this.deps.consensus.uidOf(this.deps.subnet.netuid, this.self);
    if (uid === null || !this.permitted(uid)) return null;
    const now = Date.now();
    for (const [peer, until] of this.avoid) if (until <= now) this.avoid.delete(peer);
    return chooseForwarder(this.deps.connectedPeers(), {
      target,
      self: this.self,
      keys: registeredKeys(this.deps.consensus.snapshot.get()),
      avoid: (peer) => this.avoid.has(peer) || this.avoid.has(`${peer} ${target}`),
      random,
    });
  }

  /** The miner's signed answer through `via`, or null when the forwarder failed (left out for a while). */
  private async throughForwarder(
    via: string,
    target: { uid: number; hotkey: string },
    params: GenerateParams,
    timeoutMs: number,
  ): Promise<GenerateResult | null> {
    try {
      const answer = await this.deps.forward!(via, target.hotkey, params, { timeoutMs });
      const f = this.state.get().forwarding;
      this.update({ forwarding: { ...f, forwarded: f.forwarded + 1 } });
      return answer;
    } catch (err) {
      const own = err instanceof RpcError && FORWARDERS_OWN.includes(err.code);
      this.avoid.set(own ? via : `${via} ${target.hotkey}`, Date.now() + FORWARDER_BACKOFF_MS);
      const f = this.state.get().forwarding;
      const lastFailure = `${via} for uid ${target.uid}: ${(err as Error).message}`;
      this.update({ forwarding: { ...f, failed: f.failed + 1, lastFailure } });
      return null;
    }
  }

  /**
   * A challenge the pinned model can hold: an honest miner refuses one whose prompt and tokens exceed the model's
   * context (a user asking for that gets the same refusal), so the length is cut to fit, and null is returned when
   * even one new token does not fit.
   */
  private async fitToContext(params: GenerateParams): Promise<GenerateParams | null> {
    const count = await this.deps.countLocally?.(params.prompt);
    if (!count || count.context === null) return params;
    // n new tokens after p prompt tokens take p + n - 1 positions (the last token is never an input).
    const room = count.context - count.tokens + 1;
    if (room < 1) return null;
    return { ...params, maxNewTokens: Math.min(params.maxNewTokens, room) };
  }

  /**
   * Whether a signed answer to `params` holds: stage 1 always (its tokens follow from its candidates; no model),
   * and with `deep` stage 2 (this node's own pass of the pinned model over the same tokens ranks each of them
   * and gives log-probs near the candidates'; an "eos" answer ends with the model's end token, others hold none).
   * The model hash the miner reports is not trusted: only its behaviour is judged.
   */
  private async judge(params: GenerateParams, answer: GenerateResult, deep: boolean): Promise<string | null> {
    const stage1 = judgeStageOne(this.deps.subnet.model, params, answer);
    if (!stage1.ok) return `stage 1: ${stage1.reason}`;
    if (!deep) return null;
    if (answer.tokenIds.length === 0) return answer.finish === 'cancelled' ? null : 'an empty answer';
    const started = performance.now();
    let reference: Reference | null;
    try {
      reference = await this.deps.scoreLocally(params.prompt, answer.tokenIds);
    } catch (err) {
      // Token ids the pinned model does not have are a wrong answer; anything else is this node's problem.
      if ((err as { code?: string }).code !== 'bad-params') throw err;
      reference = null;
    }
    const stage2 = judgeStageTwo(answer, reference, this.deps.thresholds ?? DEFAULT_AUDIT_THRESHOLDS);
    const d = this.state.get().deepChecks;
    this.update({
      deepChecks: {
        count: d.count + 1,
        ms: d.ms + (performance.now() - started),
        failed: d.failed + (stage2.ok ? 0 : 1),
      },
    });
    return stage2.ok ? null : `stage 2: ${stage2.reason}`;
  }

  /**
   * Fold one outcome for `target` into its score (EMA) and history. An answer proven wrong zeroes the score and
   * starts a penalty: the next PENALTY_CHALLENGES samples count 0 whatever they are. `route` says whether the
   * answer came through a forwarder, and how many forwarders failed first (counted, never scored).
   */
  private record(
    target: { uid: number; hotkey: string },
    outcome: Outcome,
    latencyMs: number,
    deadlineMs: number,
    deep: boolean,
    problem: string | null,
    route: { forwarded: boolean; forwardFailures: number } = { forwarded: false, forwardFailures: 0 },
  ) {
    const scores = this.state.get().scores.filter((s) => !(s.uid === target.uid && s.hotkey !== target.hotkey));
    const prev = scores.find((s) => s.uid === target.uid);
    const wrong = outcome === 'wrong';
    const penalised = wrong || (prev?.penaltyLeft ?? 0) > 0;
    const sample = penalised ? 0 : answerScore(outcome, latencyMs, deadlineMs);
    const next: MinerScore = {
      uid: target.uid,
      hotkey: target.hotkey,
      score: wrong ? 0 : ema(prev?.score, sample),
      challenges: (prev?.challenges ?? 0) + 1,
      correct: (prev?.correct ?? 0) + (outcome === 'correct' ? 1 : 0),
      last: outcome,
      latencyMs: outcome === 'correct' ? latencyMs : null,
      history: [...(prev?.history ?? []), sample].slice(-50),
      audited: (prev?.audited ?? 0) + (deep ? 1 : 0),
      wrong: (prev?.wrong ?? 0) + (wrong ? 1 : 0),
      penaltyLeft: wrong ? PENALTY_CHALLENGES : Math.max(0, (prev?.penaltyLeft ?? 0) - 1),
      forwarded: (prev?.forwarded ?? 0) + (route.forwarded ? 1 : 0),
      forwardFailures: (prev?.forwardFailures ?? 0) + route.forwardFailures,
      lastProblem: problem ?? prev?.lastProblem ?? null,
    };
    this.update({ scores: [...scores.filter((s) => s.uid !== target.uid), next].sort((a, b) => a.uid - b.uid) });
  }

  /**
   * Check a miner's signed answer that `from` (a gateway, a client) hands in: it must be this subnet's, signed by
   * a registered miner over exactly these params, and not cancelled; then it gets both stages of judge(). A wrong
   * answer counts against the miner like a wrong challenge; a correct one changes nothing (who hands answers in
   * cannot raise a miner's score). Answers wait in line for their turn (at most AUDIT_QUEUE, one per peer), one
   * audit runs at a time and each starts AUDIT_GLOBAL_INTERVAL_S after the last, so handing in answers (from any
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
    // Stage 1 is judge()'s: a signed answer whose tokens do not follow from its candidates is proof, not noise.
    const problem = await checkResult(result, {
      miner: result.miner,
      requestId: result.requestId,
      params,
      skipStageOne: true,
    });
    if (problem) return refuse('bad-params', `the answer does not check out: ${problem}`);
    const target = this.miners().find((m) => m.hotkey === result.miner);
    if (!target) return refuse('bad-params', `${result.miner} is not a miner of subnet ${this.deps.subnet.netuid}`);
    const judged = this.judgedAnswers.get(result.sig);
    if (judged) return judged;
    if (this.auditing.has(from)) return refuse('rate-limited', 'one answer at a time per peer: wait for its verdict');
    this.auditing.add(from);
    try {
      return await this.audits.add(
        async () => {
          const wait = this.lastAuditStart + AUDIT_GLOBAL_INTERVAL_S * 1000 - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          this.auditsStopped.signal.throwIfAborted();
          this.lastAuditStart = Date.now();
          return this.auditNow(params, result, target);
        },
        { signal: this.auditsStopped.signal },
      );
    } catch (err) {
      if (err instanceof QueueFullError)
        return refuse('busy', `${AUDIT_QUEUE} answers are waiting to be checked; try again shortly`);
      throw err;
    } finally {
      this.auditing.delete(from);
    }
  }

  /** Both stages on a handed-in answer, counted, and remembered by signature. */
  private async auditNow(params: GenerateParams, result: GenerateResult, target: { uid: number; hotkey: string }) {
    // Handed in twice at once (by two peers): the second waited behind the first and gets its verdict.
    const judged = this.judgedAnswers.get(result.sig);
    if (judged) return judged;
    const problem = await this.judge(params, result, true);
    const same = problem === null;
    const audits = this.state.get().audits;
    this.update({ audits: { ...audits, checked: audits.checked + 1, wrong: audits.wrong + (same ? 0 : 1) } });
    if (!same)
      this.record(
        target,
        'wrong',
        0,
        challengeDeadlineMs(params.maxNewTokens),
        true,
        `audit of a user's answer, ${problem}`,
      );
    const verdict: AuditVerdict = { verdict: same ? 'correct' : 'wrong', miner: target.hotkey, uid: target.uid };
    this.judgedAnswers.set(result.sig, verdict);
    if (this.judgedAnswers.size > JUDGED_ANSWERS) this.judgedAnswers.delete(this.judgedAnswers.keys().next().value!);
    return verdict;
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
