/**
 * Validator.audit, attacked: a signed answer handed in is judged by both stages (its tokens follow from its signed
 * candidates; the validator's own teacher-forced pass of the real model, webtensor/tiny-llama on onnxruntime-web
 * WASM, agrees with them). Only a miner's own signature over exactly those params makes evidence: a forged,
 * re-paired, cancelled or non-miner answer is refused and changes no score; a correct answer changes no score
 * either (who hands answers in cannot raise a miner); a wrong one (tokens that do not follow, made-up candidates,
 * another model's answer, a truncated answer) zeroes the miner and starts its penalty, once per answer however often
 * it is handed in; answers wait in a bounded line, one per peer, and audits start AUDIT_GLOBAL_INTERVAL_S apart.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  modelHash,
  outputHash,
  paramsHash,
  signResult,
  type GenerateParams,
  type GenerateResult,
} from '../../shared/inference/protocol.ts';
import { findServedModel } from '../../shared/inference/catalogue.ts';
import type { SubnetConfig } from '../../shared/ledger/config.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { testProfile } from '../../shared/ledger/profiles.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import { NodeInferenceEngine } from '../nodejs/inference.ts';
import { Store } from '../store.ts';
import { AUDIT_GLOBAL_INTERVAL_S, AUDIT_QUEUE, PENALTY_CHALLENGES, Validator } from './validator.ts';

const subnet: SubnetConfig = testProfile(0).subnets[0]!;
const engine = new NodeInferenceEngine();
let minerKey: PrivateKey;
let miner: string;
let strangerKey: PrivateKey;
let stranger: string;
let validator: Validator;

const params: GenerateParams = { model: subnet.model, prompt: 'Once upon a time', maxNewTokens: 8 };

/** What `key` signs for `p`: `engine`'s real answer, with any part of it replaced. */
async function answer(
  key: PrivateKey,
  p: GenerateParams,
  over: Partial<Pick<GenerateResult, 'tokenIds' | 'candidates' | 'finish'>> = {},
  by = engine,
): Promise<GenerateResult> {
  const real = await by.generate(p);
  const tokenIds = over.tokenIds ?? real.tokenIds;
  return signResult(key, {
    requestId: 'r-1',
    miner: peerIdFromPrivateKey(key).toString(),
    model: p.model,
    paramsHash: await paramsHash(p),
    modelHash: await modelHash(findServedModel(p.model)!),
    text: real.text,
    tokenIds,
    candidates: over.candidates ?? real.steps.map((s) => s.top),
    outputHash: await outputHash(tokenIds),
    promptTokens: real.promptTokens,
    finish: over.finish ?? real.finish,
    queueMs: 0,
    inferMs: real.ms,
  });
}

beforeAll(async () => {
  await engine.load(subnet.model);
  minerKey = await generateKeyPair('Ed25519');
  miner = peerIdFromPrivateKey(minerKey).toString();
  strangerKey = await generateKeyPair('Ed25519');
  stranger = peerIdFromPrivateKey(strangerKey).toString();
}, 60_000);

let snapshot: Store<LedgerSnapshot | null>;
const self = 'validator-self';

beforeEach(() => {
  snapshot = new Store<LedgerSnapshot | null>({
    subnets: [
      {
        netuid: subnet.netuid,
        uids: [
          { hotkey: miner, role: 'miner' },
          { hotkey: self, role: 'validator' },
        ],
      },
    ],
  } as unknown as LedgerSnapshot);
  validator = new Validator({
    // Not registered itself: its own challenge loop stays idle, so only audits change scores here.
    consensus: { snapshot, uidOf: () => null, currentBlock: () => 0 },
    book: { publish: async () => {}, self } as never,
    subnet,
    fault: null,
    infer: async () => {
      throw new Error('no challenges in this test');
    },
    scoreLocally: (prompt, tokenIds) => engine.score(prompt, tokenIds),
  });
  validator.start();
});

const pastGlobalLimit = () => new Promise((r) => setTimeout(r, AUDIT_GLOBAL_INTERVAL_S * 1000 + 100));
const score = () => validator.state.get().scores.find((s) => s.hotkey === miner);

describe('Validator.audit', () => {
  it('finds an honest answer correct without raising the miner, and a wrong one wrong, counting it', async () => {
    expect(await validator.audit({ params, result: await answer(minerKey, params) }, 'gateway-a')).toEqual({
      verdict: 'correct',
      miner,
      uid: 0,
    });
    expect(score()).toBeUndefined();
    await pastGlobalLimit();
    // Tokens that do not follow from the candidates signed with them (stage 1).
    const wrong = await answer(minerKey, params, { tokenIds: [1, 2, 3, 4, 5, 6, 7, 8] });
    expect(await validator.audit({ params, result: wrong }, 'gateway-b')).toMatchObject({ verdict: 'wrong' });
    expect(score()).toMatchObject({
      last: 'wrong',
      correct: 0,
      challenges: 1,
      wrong: 1,
      penaltyLeft: PENALTY_CHALLENGES,
    });
    expect(score()!.lastProblem).toMatch(/^audit of a user's answer, stage 1: /);
    expect(validator.state.get().audits).toEqual({ checked: 2, wrong: 1, refused: 0 });
    validator.stop();
  });

  it('judges an answer once: the same signed answer handed in again, by anyone, gets its verdict and counts nothing', async () => {
    const wrong = await answer(minerKey, params, { tokenIds: [1, 2, 3, 4, 5, 6, 7, 8] });
    expect(await validator.audit({ params, result: wrong }, 'gateway-a')).toMatchObject({ verdict: 'wrong' });
    const after = score();
    expect(after).toMatchObject({ challenges: 1, wrong: 1, penaltyLeft: PENALTY_CHALLENGES });
    // Replayed from many keys, again and again (each would otherwise restart the miner's penalty).
    for (const from of ['gateway-b', 'gateway-c', 'gateway-d']) {
      await pastGlobalLimit();
      expect(await validator.audit({ params, result: wrong }, from)).toMatchObject({ verdict: 'wrong', miner });
    }
    expect(score()).toEqual(after);
    expect(validator.state.get().audits).toEqual({ checked: 1, wrong: 1, refused: 0 });
    validator.stop();
  });

  it('finds made-up candidates, another model and a truncated answer wrong, however consistent (stage 2)', async () => {
    const other = new NodeInferenceEngine();
    await other.load('karpathy/stories260K');
    const sampled: GenerateParams = { ...params, maxNewTokens: 12, sampling: { seed: 5, temperature: 0.8 } };
    const real = await engine.generate(sampled);
    const halfIds = real.tokenIds.slice(0, 6);
    const cheats: [string, GenerateParams, GenerateResult][] = [
      // Random tokens, each its own only (certain) candidate: stage 1 passes, the model disagrees.
      [
        'made up',
        params,
        await answer(minerKey, params, {
          tokenIds: [9, 40, 7, 300, 12, 5, 77, 101],
          candidates: [9, 40, 7, 300, 12, 5, 77, 101].map((t) => [[t, 0]]),
        }),
      ],
      // stories260K's honest answer, signed as tiny-llama's.
      ['another model', sampled, await answer(minerKey, sampled, {}, other)],
      // The first half of an honest sampled answer, sold as finished.
      [
        'truncated',
        sampled,
        await answer(minerKey, sampled, {
          tokenIds: halfIds,
          candidates: real.steps.slice(0, 6).map((s) => s.top),
          finish: 'eos',
        }),
      ],
    ];
    // The honest sampled answer passes both stages.
    expect(await validator.audit({ params: sampled, result: await answer(minerKey, sampled) }, 'honest')).toMatchObject(
      { verdict: 'correct' },
    );
    for (const [what, p, result] of cheats) {
      await pastGlobalLimit();
      expect(await validator.audit({ params: p, result }, `gateway-${what}`), what).toMatchObject({ verdict: 'wrong' });
    }
    expect(validator.state.get().audits).toEqual({ checked: 4, wrong: 3, refused: 0 });
    expect(validator.state.get().deepChecks).toMatchObject({ count: 4, failed: 3 });
    validator.stop();
  }, 30_000);

  it('forgets the score of a miner once its UID holds another key, and lists the miner once, where it registered again', async () => {
    const wrong = await answer(minerKey, params, { tokenIds: [1, 2, 3, 4, 5, 6, 7, 8] });
    expect(await validator.audit({ params, result: wrong }, 'gateway-a')).toMatchObject({ verdict: 'wrong', uid: 0 });
    expect(score()).toMatchObject({ uid: 0, wrong: 1 });
    // The miner lost UID 0 to a stranger and registered again at UID 2 (a replay after a final checkpoint can do so).
    snapshot.set({
      subnets: [
        {
          netuid: subnet.netuid,
          uids: [
            { hotkey: stranger, role: 'miner' },
            { hotkey: self, role: 'validator' },
            { hotkey: miner, role: 'miner' },
          ],
        },
      ],
    } as unknown as LedgerSnapshot);
    await new Promise((r) => setTimeout(r, 1500)); // the loop steps every second
    expect(validator.state.get().scores).toEqual([]);
    await pastGlobalLimit();
    const again = await answer(minerKey, params, { tokenIds: [8, 7, 6, 5, 4, 3, 2, 1] });
    expect(await validator.audit({ params, result: again }, 'gateway-b')).toMatchObject({ verdict: 'wrong', uid: 2 });
    expect(validator.state.get().scores).toMatchObject([{ uid: 2, hotkey: miner, wrong: 1 }]);
    validator.stop();
  });

  it('refuses what is not evidence, changing no score', async () => {
    const honest = await answer(minerKey, params);
    const refusals: [string, unknown, RegExp][] = [
      ['malformed', { params }, /malformed at result/],
      ['re-paired with another prompt', { params: { ...params, prompt: 'Twice' }, result: honest }, /other params/],
      ['signed by someone else', { params, result: { ...honest, miner: stranger } }, /signature/],
      ['from a key that is no miner here', { params, result: await answer(strangerKey, params) }, /not a miner/],
      ['another model', { params: { ...params, model: 'karpathy/stories260K' }, result: honest }, /checks webtensor/],
      ['cancelled', { params, result: { ...honest, finish: 'cancelled' } }, /cancelled/],
    ];
    for (const [what, raw, message] of refusals)
      await expect(validator.audit(raw, `peer-${what}`), what).rejects.toMatchObject({
        message: expect.stringMatching(message),
      });
    expect(score()).toBeUndefined();
    expect(validator.state.get().audits).toEqual({ checked: 0, wrong: 0, refused: refusals.length });
    validator.stop();
  });

  it('lines answers up, one per peer, audits them apart, refuses beyond the line, and empties it when stopped', async () => {
    // Different answers each time (the same answer again would only get its first verdict back).
    const prompts = Array.from({ length: AUDIT_QUEUE + 2 }, (_, k) => `Story number ${k}`);
    const answers: { params: GenerateParams; result: GenerateResult }[] = [];
    for (const prompt of prompts) {
      const p = { ...params, prompt, maxNewTokens: 2 };
      answers.push({ params: p, result: await answer(minerKey, p) });
    }
    const started = Date.now();
    // Two peers at once: both are judged, the second at least one interval after the first started.
    const settled: number[] = [];
    const first = validator.audit(answers[0], 'gateway').then((v) => (settled.push(Date.now()), v));
    const second = validator.audit(answers[1], 'tab').then((v) => (settled.push(Date.now()), v));
    // A peer whose answer is still in line is told to wait for its verdict.
    await expect(validator.audit(answers[2], 'gateway')).rejects.toMatchObject({ code: 'rate-limited' });
    expect(await Promise.all([first, second])).toMatchObject([{ verdict: 'correct' }, { verdict: 'correct' }]);
    expect(Math.max(...settled) - started).toBeGreaterThanOrEqual(AUDIT_GLOBAL_INTERVAL_S * 1000);

    // A full line refuses the next peer as busy (not its fault); stopping refuses everyone still in line.
    const inLine = answers.slice(2, 2 + AUDIT_QUEUE).map((a, k) =>
      validator.audit(a, `sybil-${k}`).then(
        () => 'judged',
        (e: RpcError) => e.code,
      ),
    );
    await expect(validator.audit(answers.at(-1), 'one-more')).rejects.toMatchObject({ code: 'busy' });
    validator.stop();
    const outcomes = await Promise.all(inLine);
    // At most the one already running finishes; the rest are refused busy and counted nowhere.
    expect(outcomes.filter((o) => o === 'busy').length).toBeGreaterThanOrEqual(AUDIT_QUEUE - 1);
    expect(validator.state.get().audits.checked).toBeLessThanOrEqual(3);
  });
});
