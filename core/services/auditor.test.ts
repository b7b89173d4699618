/**
 * The Auditor's hand-in rules, with the router answering as a validator would (refusing busy while its line of
 * answers is full): the validator side is tested against the real model in validator-audit.test.ts and against
 * real nodes in audit.spec.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { GenerateParams, GenerateResult } from '../../shared/inference/protocol.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import { Store } from '../store.ts';
import { Auditor, BUSY_RETRIES } from './auditor.ts';
import { AUDIT_GLOBAL_INTERVAL_S } from './validator.ts';

const VALIDATOR = '12D3KooWValidatorValidatorValidatorValidatorVal1';
const MINER = '12D3KooWMinerMinerMinerMinerMinerMinerMinerMiner1';
const snapshot = new Store({
  subnets: [
    {
      netuid: 1,
      uids: [
        { hotkey: MINER, role: 'miner' },
        { hotkey: VALIDATOR, role: 'validator' },
      ],
      permits: [false, true],
    },
  ],
} as unknown as LedgerSnapshot);
const params = { model: 'webtensor/tiny-llama', prompt: 'Once', maxNewTokens: 4 } as GenerateParams;
const result = { miner: MINER, requestId: 'r1' } as GenerateResult;

/** A validator that is busy `busyFor` times, then judges the answer correct. */
function validatorBusy(busyFor: number) {
  const calls: number[] = [];
  const call = vi.fn(async () => {
    calls.push(Date.now());
    if (calls.length <= busyFor) throw new RpcError('busy', '8 answers are waiting to be checked; try again shortly');
    return { verdict: 'correct', miner: MINER, uid: 0 };
  });
  return { calls, rpc: { call } as never };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('Auditor', () => {
  it('hands an answer in again when every validator was busy, waiting its turn, until one judges it', async () => {
    const { calls, rpc } = validatorBusy(2);
    const failures: string[] = [];
    // Draws, in order: the sample, the validators' order, the first wait, the order again, the second wait. The first
    // retry waits one audit's time, the second four (jitter, so that two clients refused together do not come back
    // together).
    const draws = [0, 0, 0, 0, 1];
    const auditor = new Auditor(
      { rpc, snapshot },
      { rate: 1, random: () => draws.shift() ?? 0, onFailure: (r) => failures.push(r) },
    );
    expect(auditor.offer(1, params, result)).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(3);
    expect(calls[1]! - calls[0]!).toBe(AUDIT_GLOBAL_INTERVAL_S * 1000);
    expect(calls[2]! - calls[1]!).toBe(4 * AUDIT_GLOBAL_INTERVAL_S * 1000);
    expect(auditor.state.get()).toMatchObject({ sampled: 1, correct: 1, failed: 0, unchecked: [] });
    expect(failures).toEqual([]);
  });

  it(`gives up after ${BUSY_RETRIES} more tries and says why`, async () => {
    const { calls, rpc } = validatorBusy(Infinity);
    const failures: string[] = [];
    const auditor = new Auditor({ rpc, snapshot }, { rate: 1, onFailure: (r) => failures.push(r) });
    auditor.offer(1, params, result);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(calls).toHaveLength(1 + BUSY_RETRIES);
    expect(auditor.state.get()).toMatchObject({ correct: 0, failed: 1 });
    expect(failures[0]).toContain('waiting to be checked');
    // The answer's own entry says why, for the page that shows it.
    expect(auditor.state.get().unchecked).toEqual([{ requestId: 'r1', reason: failures[0] }]);
  });

  it('treats "rate-limited" (its previous answer still in line there) as "not now"', async () => {
    let n = 0;
    const call = vi.fn(async () => {
      if (++n === 1) throw new RpcError('rate-limited', 'one answer at a time per peer: wait for its verdict');
      return { verdict: 'wrong', miner: MINER, uid: 0 };
    });
    const auditor = new Auditor({ rpc: { call } as never, snapshot }, { rate: 1 });
    auditor.offer(1, params, result);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(auditor.state.get()).toMatchObject({ wrong: 1, failed: 0 });
  });

  it('waits for a permitted validator when its ledger knows none yet (a tab still syncing)', async () => {
    const empty = new Store<LedgerSnapshot | null>(null);
    const { calls, rpc } = validatorBusy(0);
    const auditor = new Auditor({ rpc, snapshot: empty }, { rate: 1 });
    auditor.offer(1, params, result);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(calls).toHaveLength(0);
    empty.set(snapshot.get());
    await vi.advanceTimersByTimeAsync(30_000);
    expect(auditor.state.get()).toMatchObject({ correct: 1, failed: 0 });
  });

  it('says so when no validator with a permit ever appears', async () => {
    const failures: string[] = [];
    const auditor = new Auditor(
      { rpc: validatorBusy(0).rpc, snapshot: new Store<LedgerSnapshot | null>(null) },
      { rate: 1, onFailure: (r) => failures.push(r) },
    );
    auditor.offer(1, params, result);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(failures).toEqual(['no validator with a permit is known on this subnet']);
    expect(auditor.state.get().unchecked).toEqual([{ requestId: 'r1', reason: failures[0] }]);
  });

  it('does not hand in again an answer a validator refused for another reason', async () => {
    const call = vi.fn(async () => {
      throw new RpcError('bad-params', 'not signed over these params');
    });
    const auditor = new Auditor({ rpc: { call } as never, snapshot }, { rate: 1 });
    auditor.offer(1, params, result);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(call).toHaveBeenCalledTimes(1);
    expect(auditor.state.get()).toMatchObject({ failed: 1 });
  });
});
