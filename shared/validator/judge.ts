/**
 * How a validator judges one signed answer (docs/validator.md), as pure functions: the validator service
 * (core/services/validator.ts) and the inference bench (scripts/bench-infer.ts) both use them, so what the bench
 * calibrates is exactly what validators run.
 *
 *  - Stage 1, every answer, no model: it is the subnet's model, and its tokens follow from its signed candidates
 *    with the sampling asked for (protocol.ts, stageOneProblem).
 *  - Stage 2, audited answers: the validator's own teacher-forced pass of the pinned model over the same tokens
 *    (engine.score) ranks each token and gives log-probs near the candidates' (audit-stats.ts,
 *    compareWithReference), and the answer ends right: an "eos" answer with the model's end token, any other with
 *    none. Token ids outside the model's vocabulary (score() refuses them) are a wrong answer.
 */
import {
  compareWithReference,
  DEFAULT_AUDIT_THRESHOLDS,
  type AuditThresholds,
  type StageTwo,
} from '../inference/audit-stats.ts';
import type { Reference } from '../inference/sampler.ts';
import { stageOneProblem, stepsOf, type GenerateParams, type GenerateResult } from '../inference/protocol.ts';

/** The parts of a signed answer the judgement reads. */
export type Answer = Pick<GenerateResult, 'model' | 'tokenIds' | 'candidates' | 'finish'>;

export interface Verdict {
  ok: boolean;
  /** What failed: the model named, stage 1, stage 2's comparison, its end token rule, or its vocabulary. */
  failed: 'model' | 'stage-1' | 'stage-2' | 'end' | 'vocabulary' | null;
  reason: string;
  /** Stage 2's statistics, when it compared positions. */
  stage2: StageTwo | null;
}

const pass = (reason: string, stage2: StageTwo | null = null): Verdict => ({ ok: true, failed: null, reason, stage2 });
const fail = (failed: NonNullable<Verdict['failed']>, reason: string, stage2: StageTwo | null = null): Verdict => ({
  ok: false,
  failed,
  reason,
  stage2,
});

/** Stage 1 for `subnetModel`'s validator: the model the answer names, and its tokens against its candidates. */
export function judgeStageOne(subnetModel: string, params: GenerateParams, answer: Answer): Verdict {
  if (answer.model !== subnetModel) return fail('model', `the answer is ${answer.model}'s, not ${subnetModel}'s`);
  const problem = stageOneProblem(answer, params);
  return problem ? fail('stage-1', problem) : pass('its tokens follow from its candidates');
}

/**
 * Stage 2, after stage 1 passed: `reference` is the validator's engine.score(prompt, tokenIds), or null when
 * score() refused the token ids as outside the model's vocabulary. An empty answer holds only when cancelled.
 */
export function judgeStageTwo(
  answer: Pick<Answer, 'tokenIds' | 'candidates' | 'finish'>,
  reference: Reference | null,
  thresholds: AuditThresholds = DEFAULT_AUDIT_THRESHOLDS,
): Verdict {
  if (answer.tokenIds.length === 0)
    return answer.finish === 'cancelled' ? pass('a cancelled empty answer') : fail('stage-2', 'an empty answer');
  if (reference === null) return fail('vocabulary', "its token ids are outside the model's vocabulary");
  const stage2 = compareWithReference(stepsOf(answer), reference, thresholds);
  if (!stage2.ok) return fail('stage-2', stage2.reason, stage2);
  const ends = reference.map((p) => p.eos === true);
  if (answer.finish === 'eos' && ends.indexOf(true) !== ends.length - 1)
    return fail(
      'end',
      ends.includes(true)
        ? `it ends for "eos" but holds the end token at position ${ends.indexOf(true)} of ${ends.length}`
        : 'it ends for "eos" without the end token',
      stage2,
    );
  if (answer.finish !== 'eos' && ends.includes(true))
    return fail(
      'end',
      `it ends for "${answer.finish}" but holds the end token at position ${ends.indexOf(true)}`,
      stage2,
    );
  return pass(stage2.reason, stage2);
}

/**
 * Both stages, as a validator that audits this answer in depth: `reference` as for judgeStageTwo, or undefined
 * for an answer that is not audited (stage 1 alone).
 */
export function judgeAnswer(
  subnetModel: string,
  params: GenerateParams,
  answer: Answer,
  reference: Reference | null | undefined,
  thresholds: AuditThresholds = DEFAULT_AUDIT_THRESHOLDS,
): Verdict {
  const first = judgeStageOne(subnetModel, params, answer);
  if (!first.ok || reference === undefined) return first;
  return judgeStageTwo(answer, reference, thresholds);
}
