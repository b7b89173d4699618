/**
 * The Auditor's hand-in rules, with the router answering as a validator would (refusing busy while it audits
 * another answer): the validator side is tested against real nodes in validator-audit.test.ts and audit.spec.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { GenerateParams, GenerateResult } from '../../shared/inference/protocol.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import { Store } from '../store.ts';
import { Auditor, BUSY_RETRIES } from './auditor.ts';

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
    if (calls.length <= busyFor) throw new RpcError('busy', 'an audit is running; try again shortly');
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
    const auditor = new Auditor({ rpc, snapshot }, { rate: 1, onFailure: (r) => failures.push(r) });
    expect(auditor.offer(1, params, result)).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(3);
    // Each try waits the validator's per-peer interval (5 s), so a retry is never refused as rate-limited.
    expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(5_000);
    expect(auditor.state.get()).toMatchObject({ sampled: 1, correct: 1, failed: 0 });
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
    expect(failures[0]).toContain('an audit is running');
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
