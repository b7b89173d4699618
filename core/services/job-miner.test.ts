/** The order in which a miner claims a job's open shards (the service itself: jobs.test.ts, batch.spec.ts). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rng } from '../../shared/yuma/synthetic.ts';
import { shardsInClaimOrder } from './job-miner.ts';

describe('shardsInClaimOrder', () => {
  it('is a fixed order of exactly the open shards', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.uniqueArray(fc.nat(255)), (self, job, open) => {
        const order = shardsInClaimOrder(self, job, open);
        expect([...order].sort((a, b) => a - b)).toEqual([...open].sort((a, b) => a - b));
        expect(shardsInClaimOrder(self, job, [...open].reverse())).toEqual(order);
      }),
    );
  });

  it('spreads miners over the shards: 4 miners on 16 open shards first pick 3.6 different ones on average', () => {
    const draw = rng(11);
    const id = () => Array.from({ length: 4 }, () => Math.floor(draw() * 2 ** 32).toString(36)).join('');
    const open = Array.from({ length: 16 }, (_, k) => k);
    let distinct = 0;
    const jobs = 500;
    for (let j = 0; j < jobs; j++) {
      const job = id();
      const miners = Array.from({ length: 4 }, id);
      distinct += new Set(miners.map((m) => shardsInClaimOrder(m, job, open)[0])).size;
    }
    // Independent uniform picks give 16 × (1 − (15/16)^4) = 3.63; all taking the lowest gives 1.
    expect(distinct / jobs).toBeGreaterThan(3.4);
    expect(distinct / jobs).toBeLessThan(3.9);
  });
});
