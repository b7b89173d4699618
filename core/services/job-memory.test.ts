/**
 * What a JobClient keeps across restarts (job-memory.ts): a job written and read back is the same job; a value that
 * is not one is refused with a sentence naming what is wrong; and the client keeps at most MAX_KEPT_JOBS closed jobs,
 * the newest. (The restart itself, against a real ledger and model, is in jobs.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import type { JobSettlement } from '../../shared/ledger/jobs.ts';
import { testProfile } from '../../shared/ledger/profiles.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { Store } from '../store.ts';
import { snapshotWith } from '../testing/fakes.ts';
import { JobClient, type JobStatus } from './job-client.ts';
import { jobMemoryText, MAX_KEPT_JOBS, MemoryJobMemoryStore, readJobMemory } from './job-memory.ts';
import type { JobBlobs } from './jobs.ts';

const hex = (n: number) => n.toString(16).padStart(64, '0');
const CLIENT = '12D3KooWClient';

function closedJob(n: number): JobStatus {
  return {
    id: hex(n),
    phase: 'closed',
    reason: null,
    client: CLIENT,
    netuid: 1,
    model: 'webtensor/tiny-llama',
    requests: 5,
    inputHash: hex(1000 + n),
    price: 1000n,
    maxTokens: 16,
    openedAt: 10 + n,
    deadline: 100 + n,
    cancelled: false,
    deposit: 5000n,
    paid: 2000n,
    refunded: 3000n,
    forfeited: 4000n,
    shards: [
      { shard: 0, first: 0, end: 2, status: 'paid', miner: '12D3KooWMiner', resultsHash: hex(2000 + n), until: null },
      { shard: 1, first: 2, end: 5, status: 'refunded', miner: null, resultsHash: null, until: null },
    ],
    closedAt: 120 + n,
  };
}

/** The kept value of job 1 with `change` made to its parsed form. */
function changed(
  change: (v: { v: unknown; job: Record<string, unknown> & { shards: Record<string, unknown>[] } }) => void,
) {
  const v = JSON.parse(jobMemoryText(closedJob(1)));
  change(v);
  return JSON.stringify(v);
}

describe('a kept job', () => {
  it('reads back as the job that was written, amounts as bigints', () => {
    const job = closedJob(1);
    expect(readJobMemory(job.id, jobMemoryText(job))).toEqual(job);
    const pending: JobStatus = { ...job, phase: 'pending', paid: 0n, refunded: 0n, closedAt: null };
    pending.shards = pending.shards.map((s) => ({ ...s, status: 'open', miner: null, resultsHash: null }));
    expect(readJobMemory(job.id, jobMemoryText(pending))).toEqual(pending);
  });

  const bad: [string, string, RegExp][] = [
    ['not JSON', '{"v": 1, "job"', /^not JSON /],
    ['another format', changed((v) => (v.v = 2)), /^written in format 2; this version reads format 1$/],
    ['a missing field', changed((v) => delete v.job['deposit']), /^job\.deposit: /],
    ['a field it does not know', changed((v) => (v.job['extra'] = 1)), /^job: .*extra/],
    ['an amount that is not rao', changed((v) => (v.job['paid'] = '-5')), /^job\.paid: expected an amount in rao/],
    ['a bad hash', changed((v) => (v.job.shards[0]!['resultsHash'] = 'XYZ')), /^job\.shards\.0\.resultsHash: /],
    ['another key', changed((v) => (v.job['id'] = hex(9))), /^kept under 0+1 but names job 0+9$/],
    [
      'a shard out of place',
      changed((v) => (v.job.shards[1]!['first'] = 3)),
      /^job\.shards\.1: shard 1 covering \[3, 5\) where shard 1 of 2 covers \[2, 5\)$/,
    ],
    [
      'a paid shard without its miner',
      changed((v) => (v.job.shards[0]!['miner'] = null)),
      /^job\.shards\.0: paid without a miner and a results hash$/,
    ],
    [
      'a deposit that is not price × requests',
      changed((v) => (v.job['deposit'] = '6000')),
      /^job\.deposit: 6000 rao is not price × requests \(1000 × 5\)$/,
    ],
    [
      'a closed job with a shard in flight',
      changed((v) => (v.job.shards[1]!['status'] = 'claimed')),
      /^job\.shards\.1: claimed in a closed job$/,
    ],
    [
      'amounts that do not add up',
      changed((v) => (v.job['paid'] = '1000')),
      /^job\.paid: 1000 rao paid and 3000 refunded do not add up to the deposit, 5000$/,
    ],
  ];
  it.each(bad)('is refused when it holds %s, saying what is wrong', (_what, text, message) => {
    expect(() => readJobMemory(hex(1), text)).toThrow(message);
  });
});

describe("a client's memory", () => {
  it(`keeps the newest ${MAX_KEPT_JOBS} closed jobs, and reads them back after a restart`, async () => {
    const memory = new MemoryJobMemoryStore();
    const settled: JobSettlement[] = Array.from({ length: MAX_KEPT_JOBS + 4 }, (_, n) => {
      const j = closedJob(n + 1);
      return {
        job: j.id,
        block: j.closedAt!,
        client: CLIENT,
        netuid: 1,
        model: j.model,
        requests: 5,
        shards: 2,
        inputHash: j.inputHash,
        price: 1000n,
        maxTokens: 16,
        deadline: j.deadline,
        openedAt: j.openedAt,
        deposit: 5000n,
        paid: 2000n,
        refunded: 3000n,
        forfeited: 4000n,
        cancelled: false,
        shardStates: [
          { status: 'paid', miner: '12D3KooWMiner', resultsHash: j.shards[0]!.resultsHash! },
          { status: 'refunded' },
        ],
      };
    });
    const snapshot = new Store<LedgerSnapshot | null>({ ...snapshotWith({}), settledJobs: settled });
    const blobs = { isServed: () => false, has: async () => false, unserve: () => {} } as unknown as JobBlobs;
    const ledger = {
      book: { publish: async () => Promise.reject(new Error('nothing is signed here')), self: CLIENT },
      network: testProfile(0),
      snapshot,
      admission: { spendable: () => 0n },
      currentBlock: () => 500,
      blobs,
      memory,
    };
    const first = new JobClient(ledger);
    first.start();
    await expect.poll(() => memory.values.size).toBe(MAX_KEPT_JOBS);
    // The oldest four went, here and in the memory.
    expect(first.state.get().jobs).toHaveLength(MAX_KEPT_JOBS);
    expect([...memory.values.keys()].sort()).toEqual(settled.slice(4).map((s) => s.job));
    first.stop();

    // Started again where the replay no longer reports them.
    snapshot.set({ ...snapshotWith({}), settledJobs: [] });
    const again = new JobClient(ledger);
    again.start();
    await again.ready();
    expect(again.state.get()).toMatchObject({ skipped: [], lastError: null });
    expect(again.state.get().jobs.map((j) => j.id)).toEqual(first.state.get().jobs.map((j) => j.id));
    expect(again.status(settled.at(-1)!.job)).toEqual(first.status(settled.at(-1)!.job));
  });

  it('reports a memory it cannot read, and works on without it', async () => {
    const memory = new MemoryJobMemoryStore();
    memory.all = async () => Promise.reject(new Error('Could not open /data/jobs-x.sqlite: file is not a database'));
    const client = new JobClient({
      book: { publish: async () => Promise.reject(new Error('unused')), self: CLIENT },
      network: testProfile(0),
      snapshot: new Store<LedgerSnapshot | null>(null),
      admission: { spendable: () => 0n },
      currentBlock: () => 500,
      blobs: {} as JobBlobs,
      memory,
    });
    client.start();
    await client.ready();
    expect(client.state.get().lastError).toBe(
      'Could not read the jobs kept across restarts: Could not open /data/jobs-x.sqlite: file is not a database',
    );
    expect(client.status(hex(1))).toBeNull();
  });
});
