/**
 * `/webtensor/infer/1`: what a client may ask a miner, and the miner's signed answer. Requests travel in the
 * signed RPC envelope of shared/p2p (one request per stream, tokens streamed as chunks). The final result is
 * signed by the miner over a domain-separated canonical encoding, so a validator or client can hold a miner to
 * what it answered: the request id, the model and its hash, the token ids and their hash, and timings.
 */
import canonicalize from 'canonicalize';
import { peerIdFromString } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import { z } from 'zod';
import { fromBase64Url, toBase64Url } from '../p2p/signing.ts';
import type { ModelEntry } from './catalogue.ts';
import { CANDIDATES, MIN_Q, type Step } from './sampler.ts';
import { checkSteps } from './audit-stats.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';

export const MAX_PROMPT_CHARS = 2000;
export const MAX_NEW_TOKENS = 128;

export const samplingSchema = z.object({
  seed: z.number().int().min(0).max(0xffffffff),
  temperature: z.number().gt(0).max(2),
  /** Sampling draws from the CANDIDATES (16) most probable tokens at most (sampler.ts): a larger topK acts as 16. */
  topK: z.number().int().min(1).max(1000).optional(),
  /** Nucleus sampling: keep the most probable tokens whose probabilities add up to topP (absent: all). */
  topP: z.number().gt(0).max(1).optional(),
});

export const generateParamsSchema = z.object({
  model: z.string().min(1).max(128),
  prompt: z.string().min(1).max(MAX_PROMPT_CHARS),
  maxNewTokens: z.number().int().min(1).max(MAX_NEW_TOKENS),
  /** Absent: greedy decoding (what validators check). */
  sampling: samplingSchema.optional(),
  /** Generation ends once the text contains one of these; the text is cut before it. */
  stop: z.array(z.string().min(1).max(32)).max(4).optional(),
});
export type GenerateParams = z.infer<typeof generateParamsSchema>;

export const finishReasons = ['length', 'stop', 'eos', 'cancelled'] as const;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 hex digits');
export const generateResultSchema = z.object({
  /** The RPC request's id; a batch job's line is `<job id>:<line index>` (70 characters at most). */
  requestId: z.string().max(80),
  miner: z.string().max(128),
  model: z.string().max(128),
  /** paramsHash() of what the miner was asked: a signed answer cannot be paired with another prompt. */
  paramsHash: hex64,
  modelHash: hex64,
  text: z.string().max(64 * 1024),
  tokenIds: z.array(z.number().int().nonnegative()).max(MAX_NEW_TOKENS),
  /**
   * Per token, the candidates the miner's decode step chose it from: [token id, log-prob in 1/1024 nat], most
   * probable first (shared/inference/sampler.ts). Signed with the rest, so a validator can recompute every choice
   * (stage 1) and compare the log-probs with its own pass (stage 2). Checked in full by audit-stats.ts.
   */
  candidates: z
    .array(
      z
        .array(z.tuple([z.number().int().nonnegative(), z.number().int().min(MIN_Q).max(0)]))
        .min(1)
        .max(CANDIDATES),
    )
    .max(MAX_NEW_TOKENS),
  outputHash: hex64,
  promptTokens: z.number().int().nonnegative(),
  finish: z.enum(finishReasons),
  queueMs: z.number().nonnegative(),
  inferMs: z.number().nonnegative(),
  sig: z.string().regex(/^[A-Za-z0-9_-]{1,200}$/),
});
export type GenerateResult = z.infer<typeof generateResultSchema>;

const DOMAIN = 'webtensor/infer/1/result\n';
const encoder = new TextEncoder();

/**
 * sha256 of small protocol texts, computed synchronously: WebCrypto's digest resolves on the event loop, which is
 * busy while a miner generates, and cost a remote request 2-4 ms per hash where the hash itself takes 0.03 ms.
 */
const hashHex = (text: string): Promise<string> => Promise.resolve(bytesToHex(sha256(encoder.encode(text))));

/**
 * One hash for a model version: over every file's path and sha256, in catalogue order. A hub model is named by
 * its repository and revision (its files are checked against the hub's hashes when downloaded).
 */
export function modelHash(entry: ModelEntry): Promise<string> {
  if (entry.source === 'hub') return hashHex(`hub:${entry.id}@${entry.revision}\n`);
  return hashHex(entry.files.map((f) => `${f.path}:${f.sha256}\n`).join(''));
}

/** What a miner signs it was asked: sha256 of the JCS of the generation params. */
export function paramsHash(params: GenerateParams): Promise<string> {
  return hashHex(`webtensor/infer/1/params\n${canonicalize(params)!}`);
}

/** The hash a miner commits to: sha256 of the token ids as a JSON array (e.g. "[5,17,2]"). */
export function outputHash(tokenIds: readonly number[]): Promise<string> {
  return hashHex(JSON.stringify(tokenIds));
}

function resultBytes(result: Omit<GenerateResult, 'sig'>): Uint8Array {
  const body: Partial<GenerateResult> = { ...result };
  delete body.sig; // everything but the signature is signed
  const text = canonicalize(body);
  if (text === undefined) throw new Error('result cannot be canonicalised');
  return encoder.encode(DOMAIN + text);
}

export async function signResult(key: PrivateKey, result: Omit<GenerateResult, 'sig'>): Promise<GenerateResult> {
  return { ...result, sig: toBase64Url(await key.sign(resultBytes(result))) };
}

/**
 * Stage 1 of an audit, for every answer (no model needed): why the signed tokens do not follow from the signed
 * candidates with the sampling asked for, or null. A signed answer that fails it is proof of a miner's lie.
 */
export function stageOneProblem(
  r: Pick<GenerateResult, 'tokenIds' | 'candidates' | 'finish'>,
  params: GenerateParams,
): string | null {
  if (r.finish === 'length' && r.tokenIds.length !== params.maxNewTokens)
    return `the result ends for length after ${r.tokenIds.length} of ${params.maxNewTokens} tokens`;
  if (r.tokenIds.length > params.maxNewTokens)
    return `the result has ${r.tokenIds.length} tokens, more than the ${params.maxNewTokens} asked for`;
  const stage1 = checkSteps(stepsOf(r), r.tokenIds, params.sampling);
  return stage1.ok ? null : `token ${stage1.position} does not follow from its candidates: ${stage1.reason}`;
}

/**
 * Why a miner's final answer cannot be trusted, or null when it checks out: it must parse, be signed by the
 * peer that was asked, answer this request (and these params, when given), carry the hash of its own token ids and
 * one candidate list per token, and (params given, unless skipStageOne) pass stageOneProblem.
 */
export async function checkResult(
  raw: unknown,
  expected: { miner: string; requestId: string; params?: GenerateParams; skipStageOne?: boolean },
): Promise<string | null> {
  const parsed = generateResultSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return `the result is malformed at ${issue.path.join('.') || '(result)'}: ${issue.message}`;
  }
  const r = parsed.data;
  if (r.miner !== expected.miner) return `the result names ${r.miner}, not the miner asked`;
  if (r.requestId !== expected.requestId) return `the result answers request ${r.requestId}, not ${expected.requestId}`;
  if (expected.params && r.paramsHash !== (await paramsHash(expected.params)))
    return 'the result answers other params than the ones asked';
  if (r.outputHash !== (await outputHash(r.tokenIds))) return 'the output hash does not match the token ids';
  if (r.candidates.length !== r.tokenIds.length)
    return `the result lists candidates for ${r.candidates.length} tokens, not its ${r.tokenIds.length}`;
  if (expected.params && !expected.skipStageOne) {
    const problem = stageOneProblem(r, expected.params);
    if (problem) return problem;
  }
  try {
    const key = peerIdFromString(r.miner).publicKey;
    if (!key || !(await key.verify(resultBytes(r), fromBase64Url(r.sig))))
      return "the result's signature does not verify";
  } catch {
    return "the result's signature does not verify";
  }
  return null;
}

/**
 * `validator.audit` on `/webtensor/audit/1`: a miner's signed answer and the params it signed (paramsHash), for a
 * validator to generate again and compare. The signature makes it evidence: nobody but the miner can make one.
 */
export const auditRequestSchema = z.object({ params: generateParamsSchema, result: generateResultSchema });
export type AuditRequest = z.infer<typeof auditRequestSchema>;

/** A validator's finding: the miner's token ids were (not) the ones its own run of the pinned model gives. */
export const auditVerdictSchema = z.object({
  verdict: z.enum(['correct', 'wrong']),
  miner: z.string().max(128),
  uid: z.number().int().nonnegative(),
});
export type AuditVerdict = z.infer<typeof auditVerdictSchema>;

/** The steps a signed result stands for: its token ids with their candidates (one list per token). */
export function stepsOf(result: Pick<GenerateResult, 'tokenIds' | 'candidates'>): Step[] {
  return result.tokenIds.map((token, k) => ({ token, top: (result.candidates[k] ?? []) as Step['top'] }));
}
