/**
 * The job file and the results file (docs/jobs.md, "Files"): parsed strictly, every refusal naming its line, and a
 * shard's results held to the job, the shard, the miner and each request's params, with real signatures.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  checkResultsFile,
  JobFileError,
  jobFileBytes,
  jobRequestId,
  parseJobFile,
  resultsFileBytes,
  type JobLine,
  type ResultLine,
} from './job-files.ts';
import { outputHash, paramsHash, signResult, type GenerateParams } from './protocol.ts';

const MODEL = 'webtensor/tiny-llama';
const JOB = 'ab'.repeat(32);
const lines: JobLine[] = ['a', 'b', 'c', 'd', 'e'].map((id, k) => ({
  custom_id: id,
  params: { model: MODEL, prompt: `prompt ${k}`, maxNewTokens: 3 },
}));
let key: PrivateKey;
let miner: string;

/** A signed, stage-1 consistent answer (each token its own only candidate) to `params` under `requestId`. */
async function answer(params: GenerateParams, requestId: string, signer = key) {
  const tokenIds = [5, 6, 7];
  return signResult(signer, {
    requestId,
    miner: peerIdFromPrivateKey(signer).toString(),
    model: params.model,
    paramsHash: await paramsHash(params),
    modelHash: '0'.repeat(64),
    text: 'abc',
    tokenIds,
    candidates: tokenIds.map((t) => [[t, 0]]),
    outputHash: await outputHash(tokenIds),
    promptTokens: 2,
    finish: 'length',
    queueMs: 0,
    inferMs: 1,
  });
}

/** Shard 1 of 2 over the five requests is lines 2..4 (indices 2, 3, 4). */
async function shardOne(job = JOB): Promise<ResultLine[]> {
  return Promise.all(
    [2, 3, 4].map(async (i) => ({
      custom_id: lines[i]!.custom_id,
      result: await answer(lines[i]!.params, jobRequestId(job, i)),
    })),
  );
}

const expected = () => ({ jobId: JOB, model: MODEL, shards: 2, shard: 1, miner, lines });

beforeAll(async () => {
  key = await generateKeyPair('Ed25519');
  miner = peerIdFromPrivateKey(key).toString();
});

describe('the job file', () => {
  it('round-trips, with or without the final newline', () => {
    const bytes = jobFileBytes(lines);
    expect(parseJobFile(bytes, { model: MODEL, maxTokens: 3, requests: 5 })).toEqual(lines);
    const text = new TextDecoder().decode(bytes);
    expect(parseJobFile(text.slice(0, -1), { model: MODEL })).toEqual(lines);
  });

  it('names the line of every refusal, and refuses a file that is not the job it names', () => {
    const line = (v: unknown) => JSON.stringify(v);
    const cases: [string, string, object, RegExp][] = [
      ['not JSON', `${line(lines[0])}\nnope\n`, {}, /^line 2: not JSON/],
      ['an empty line', `${line(lines[0])}\n\n${line(lines[1])}`, {}, /^line 2: the line is empty/],
      [
        'a missing prompt',
        line({ custom_id: 'x', params: { model: MODEL, maxNewTokens: 3 } }),
        {},
        /^line 1: params\.prompt/,
      ],
      ['an unknown field', line({ ...lines[0], extra: 1 }), {}, /^line 1: \(line\): Unrecognized key/],
      [
        'an unknown sampling field',
        line({ custom_id: 'x', params: { ...lines[0]!.params, sampling: { seed: 1, temperature: 1, top_k: 3 } } }),
        {},
        /^line 1: params\.sampling: Unrecognized key/,
      ],
      ['a long custom_id', line({ ...lines[0], custom_id: 'x'.repeat(65) }), {}, /^line 1: custom_id/],
      [
        'too many tokens for the job',
        line(lines[0]),
        { maxTokens: 2 },
        /^line 1: asks for 3 new tokens; the job allows at most 2/,
      ],
      ['fewer requests than the job names', line(lines[0]), { requests: 2 }, /holds 1 requests; the job names 2/],
      ['nothing', '', {}, /holds no lines/],
    ];
    for (const [what, text, terms, message] of cases) {
      let err: unknown;
      try {
        parseJobFile(text, { model: MODEL, ...terms });
      } catch (e) {
        err = e;
      }
      expect(err, what).toBeInstanceOf(JobFileError);
      expect((err as Error).message, what).toMatch(message);
    }
    expect(() => parseJobFile(new Uint8Array([0xff, 0xfe]), { model: MODEL })).toThrow(/not UTF-8/);
  });
});

describe('a shard’s results file', () => {
  it('accepts the shard’s signed answers in order', async () => {
    const results = await shardOne();
    expect(await checkResultsFile(resultsFileBytes(results), expected())).toEqual(results);
  });

  it('refuses results of another job, shard, order, miner or request, naming the line', async () => {
    const good = await shardOne();
    const stranger = await generateKeyPair('Ed25519');
    const other = await answer(lines[3]!.params, jobRequestId(JOB, 3), stranger);
    const cases: [string, ResultLine[], RegExp][] = [
      ['too few lines', good.slice(0, 2), /hold 2 lines; shard 1 has 3 requests/],
      ['out of order', [good[1]!, good[0]!, good[2]!], /^line 1: custom_id "d"; request 2 is "c"/],
      ['answers of another job', await shardOne('cd'.repeat(32)), /^line 1: the result answers request cd/],
      [
        'another request’s answer under this one’s id',
        [good[0]!, { custom_id: 'd', result: await answer(lines[4]!.params, jobRequestId(JOB, 3)) }, good[2]!],
        /^line 2: the result answers other params/,
      ],
      ['signed by another key', [good[0]!, { custom_id: 'd', result: other }, good[2]!], /^line 2: the result names/],
      [
        'a forged signature',
        [good[0]!, { custom_id: 'd', result: { ...good[1]!.result, text: 'forged' } }, good[2]!],
        /^line 2: the result's signature does not verify/,
      ],
      [
        'a cancelled answer',
        [good[0]!, good[1]!, { custom_id: 'e', result: { ...good[2]!.result, finish: 'cancelled' } }],
        /^line 3: the result was cancelled/,
      ],
    ];
    for (const [what, results, message] of cases)
      await expect(checkResultsFile(resultsFileBytes(results), expected()), what).rejects.toThrow(message);
  });
});
