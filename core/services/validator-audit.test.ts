/**
 * Validator.audit, attacked: a signed answer handed in is judged by generating its params again on the real
 * model (webtensor/tiny-llama on onnxruntime-web WASM). Only a miner's own signature over exactly those params
 * makes evidence: a forged, re-paired, cancelled or non-miner answer is refused and changes no score; a correct
 * answer changes no score either (who hands answers in cannot raise a miner); a wrong one counts against it;
 * one peer gets one audit per AUDIT_INTERVAL_S.
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
import { NodeInferenceEngine } from '../nodejs/inference.ts';
import { Store } from '../store.ts';
import { AUDIT_GLOBAL_INTERVAL_S, Validator } from './validator.ts';

const subnet: SubnetConfig = testProfile(0).subnets[0]!;
const engine = new NodeInferenceEngine();
let minerKey: PrivateKey;
let miner: string;
let strangerKey: PrivateKey;
let stranger: string;
let validator: Validator;

const params: GenerateParams = { model: subnet.model, prompt: 'Once upon a time', maxNewTokens: 8 };

/** What `key` signs for `p`: the model's real tokens, or `tokens` instead. */
async function answer(key: PrivateKey, p: GenerateParams, tokens?: number[]): Promise<GenerateResult> {
  const real = await engine.generate(p);
  const tokenIds = tokens ?? real.tokenIds;
  return signResult(key, {
    requestId: 'r-1',
    miner: peerIdFromPrivateKey(key).toString(),
    model: p.model,
    paramsHash: await paramsHash(p),
    modelHash: await modelHash(findServedModel(p.model)!),
    text: real.text,
    tokenIds,
    outputHash: await outputHash(tokenIds),
    promptTokens: real.promptTokens,
    finish: real.finish,
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

beforeEach(() => {
  const self = 'validator-self';
  const snapshot = new Store<LedgerSnapshot | null>({
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
    generateLocally: (p) => engine.generate(p),
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
    const wrong = await answer(minerKey, params, [1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await validator.audit({ params, result: wrong }, 'gateway-b')).toMatchObject({ verdict: 'wrong' });
    expect(score()).toMatchObject({ last: 'wrong', correct: 0, challenges: 1 });
    expect(validator.state.get().audits).toEqual({ checked: 2, wrong: 1, refused: 0 });
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

  it('takes one audit per peer per interval, and one in all per shorter interval (more keys gain nothing)', async () => {
    const honest = await answer(minerKey, params);
    await validator.audit({ params, result: honest }, 'gateway');
    await expect(validator.audit({ params, result: honest }, 'gateway')).rejects.toMatchObject({
      code: 'rate-limited',
    });
    await expect(validator.audit({ params, result: honest }, 'sybil-1')).rejects.toMatchObject({ code: 'busy' });
    await pastGlobalLimit();
    await validator.audit({ params, result: honest }, 'another-gateway');
    validator.stop();
    await expect(validator.audit({ params, result: honest }, 'third')).rejects.toMatchObject({ code: 'busy' });
  });
});
