/**
 * Yuma consensus in a Web Worker, exposed over Comlink. The main thread sends plain data (a case in the
 * vectors.json format, or params + inputs) and gets the same bits Node computes; bigints survive
 * structured cloning. It also replays the ledger straight from IndexedDB (the slot's LedgerDb) and stores each
 * closed epoch there, and solves registration proofs of work off the main thread.
 */
import { expose } from 'comlink';
import Dexie from 'dexie';
import type { NetworkConfig } from '../shared/ledger/config.ts';
import { LedgerDb } from '../shared/ledger/db.ts';
import { solveProofOfWork, type PowProgress } from '../shared/ledger/pow.ts';
import { CheckpointedReplay } from '../shared/ledger/checkpointed-replay.ts';
import { snapshotOf, type LedgerSnapshot } from '../shared/ledger/snapshot.ts';
import { runEpochFloat64 } from '../shared/yuma/float64.ts';
import { syntheticEpoch, type SyntheticSpec } from '../shared/yuma/synthetic.ts';
import {
  parseCase,
  runCase,
  runEpoch,
  type CaseOutput,
  type EpochInputs,
  type EpochResult,
  type YumaParams,
} from '../shared/yuma/index.ts';

export interface YumaWorkerApi {
  /** Validate and run one case; throws CaseFormatError (message says what and where) on bad input. */
  runCase(data: unknown, opts?: { replay?: boolean }): CaseOutput;
  runEpoch(params: YumaParams, inputs: EpochInputs): EpochResult;
  /** Run `runCase` `repeat` times and report the mean wall time in ms (for benchmarks). */
  timeCase(data: unknown, repeat: number): { meanMs: number; output: CaseOutput };
  /** Build a seeded synthetic epoch here, then time the exact engine and the float64 port on it (median ms). */
  benchEpoch(spec: SyntheticSpec, repeats: number): { exactMs: number; floatMs: number };
  /** Replay the slot's ledger for `config` through block `closeThrough`; stores closed epochs in the database. */
  computeLedger(slot: number, config: NetworkConfig, closeThrough: number): Promise<LedgerSnapshot>;
  solveRegistration(
    input: { network: string; netuid: number; author: string; checkpoint: string; difficulty: number },
    onProgress?: (p: PowProgress) => void,
  ): Promise<{ nonce: string; hashes: number; ms: number }>;
}

const databases = new Map<number, LedgerDb>();
/** Each slot's replays continue from the last state final by votes (shared/ledger/checkpointed-replay.ts). */
const checkpointed = new Map<number, CheckpointedReplay>();

function medianMs(repeats: number, run: () => void): number {
  const times: number[] = [];
  for (let k = 0; k < Math.max(1, repeats); k++) {
    const start = performance.now();
    run();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1]!;
}

const api: YumaWorkerApi = {
  runCase: (data, opts) => runCase(parseCase(data), opts),
  runEpoch: (params, inputs) => runEpoch(params, inputs),
  timeCase(data, repeat) {
    const parsed = parseCase(data);
    let output = runCase(parsed);
    const start = performance.now();
    for (let k = 0; k < repeat; k++) output = runCase(parsed);
    return { meanMs: (performance.now() - start) / Math.max(1, repeat), output };
  },
  benchEpoch(spec, repeats) {
    const { params, inputs } = syntheticEpoch(spec);
    return {
      exactMs: medianMs(repeats, () => runEpoch(params, inputs)),
      floatMs: medianMs(Math.max(5, repeats), () => runEpochFloat64(params, inputs)),
    };
  },
  async computeLedger(slot, config, closeThrough) {
    const start = performance.now();
    let db = databases.get(slot);
    if (!db) databases.set(slot, (db = new LedgerDb(slot)));
    let replays = checkpointed.get(slot);
    if (!replays) checkpointed.set(slot, (replays = new CheckpointedReplay()));
    const net = config.networkId;
    const records = db.records;
    const { result } = await replays.run(
      config,
      {
        recordsFrom: (block) =>
          records.where('[network+block]').between([net, block], [net, Dexie.maxKey], true, true).toArray(),
        joinedBase: async () => (await db.bases.get(net)) ?? null,
      },
      closeThrough,
    );
    await db.epochs.bulkPut(result.epochs.map((e) => ({ ...e, network: net })));
    const count = await records.where('network').equals(net).count();
    return snapshotOf(result, count, closeThrough, performance.now() - start);
  },
  async solveRegistration(input, onProgress) {
    const start = performance.now();
    const begin = BigInt(Math.floor(Math.random() * 2 ** 32)) << 16n;
    const found = await solveProofOfWork({ ...input, start: begin }, onProgress);
    return { ...found, ms: performance.now() - start };
  },
};

expose(api);
