/**
 * A network for testing batch jobs service against service (core/services/jobs.test.ts, gateway/batch-restart.test.ts):
 * a real ledger (each node signs with its own key through its own RecordBook and Admission into one store, and the
 * real replay makes the snapshot every node reads), real Blobs moving the files, and real Miners over a real model.
 * Only the transport (FakeRpcRouter: a request goes straight to the other node's handler, every value through JSON)
 * and the clock (the test moves it and replays, as every node's Consensus would) are stand-ins; the test drives each
 * service's step itself.
 *
 * A node "restarts" by being made again on the same key with the same blob store (and job memory): new services,
 * nothing of the old ones' memory, the same ledger store and files, as a process started again on its data directory.
 */
import { Admission } from '../../shared/ledger/admission.ts';
import type { InferenceEngine } from '../../shared/inference/engine.ts';
import { blockAt, type NetworkConfig, type SubnetConfig } from '../../shared/ledger/config.ts';
import { replay, type StoredRecord } from '../../shared/ledger/replay.ts';
import { snapshotOf, type LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import type { Actor } from '../../shared/ledger/testing.ts';
import { RpcError, type RpcRequest } from '../../shared/p2p/messages.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import { MemoryBlobStore } from '../chunked-blob-store.ts';
import { MemoryLedgerStore } from '../memory-ledger-store.ts';
import type { BlobStore, JobMemoryStore } from '../platform.ts';
import { Blobs, fromBase64, toBase64, type BlobsInit } from '../services/blobs.ts';
import { JobAuditor } from '../services/job-auditor.ts';
import { JobClient } from '../services/job-client.ts';
import { JobMiner } from '../services/job-miner.ts';
import type { JobLedger } from '../services/jobs.ts';
import { Miner } from '../services/miner.ts';
import { RecordBook } from '../services/record-book.ts';
import type { CallOptions } from '../services/rpc.ts';
import { Store } from '../store.ts';
import { FakeClock, FakeRpcRouter, GENESIS_MS, rowOf } from './fakes.ts';

export interface JobTestNode {
  id: string;
  rpc: FakeRpcRouter;
  blobs: Blobs;
  /** Where its blobs live: hand it to `node` again to restart the node on the same files. */
  blobStore: BlobStore;
  book: RecordBook;
  admission: Admission;
  ledger: JobLedger;
}

/** A blob chunk with its first byte changed (other chunks pass as they are). */
function garbled(chunk: Json): Json {
  const data = (chunk as { data?: unknown }).data;
  if (typeof data !== 'string') return chunk;
  const bytes = fromBase64(data)!;
  bytes[0] = bytes[0]! ^ 0xff;
  return { ...(chunk as Record<string, Json>), data: toBase64(bytes) };
}

/** The nodes, their shared ledger store, the clock and the snapshot every node reads. */
export class JobNet {
  readonly clock: FakeClock;
  readonly store = new MemoryLedgerStore();
  readonly snapshot = new Store<LedgerSnapshot | null>(null);
  /** Nodes nobody can reach. */
  readonly down = new Set<string>();
  /** Nodes whose blob bytes arrive with a byte changed. */
  readonly garbled = new Set<string>();
  /**
   * Settlements at or before this block are left out of the snapshots from now on, as a node's replay that continues
   * from a later final state leaves them out (docs/jobs.md: a replay reports the jobs closed since the state it
   * started from). -1: every settlement is reported.
   */
  reportSettledAfter = -1;
  private readonly nodes = new Map<string, JobTestNode>();

  private constructor(readonly config: NetworkConfig) {
    this.clock = new FakeClock(GENESIS_MS + 30 * config.blockMs);
  }

  /** A network at block 30 whose store holds `base` (registrations, funds, stakes), replayed. */
  static async create(config: NetworkConfig, base: readonly StoredRecord[]): Promise<JobNet> {
    const net = new JobNet(config);
    await net.store.put(base.map((r) => rowOf(r)));
    await net.replay();
    return net;
  }

  get block(): number {
    return blockAt(this.config, this.clock.now());
  }

  /** Move the clock to `block` and replay, as every node's Consensus would. */
  async at(block: number): Promise<LedgerSnapshot> {
    this.clock.ms = GENESIS_MS + block * this.config.blockMs;
    return this.replay();
  }

  async replay(): Promise<LedgerSnapshot> {
    const rows = (await this.store.all()).map((r) => ({ id: r.id, record: r.record }));
    const closeThrough = Math.max(0, this.block - this.config.graceBlocks);
    const snap = snapshotOf(replay(this.config, rows, closeThrough), rows.length, closeThrough, 0);
    snap.settledJobs = snap.settledJobs?.filter((s) => s.block > this.reportSettledAfter);
    this.snapshot.set(snap);
    for (const n of this.nodes.values()) n.admission.rebase(snap);
    return snap;
  }

  /**
   * A node of `who` (made again: a restart). `blobStore`: the files it holds (default: new and empty), `blobs`: the
   * Blobs service's settings.
   */
  async node(who: Actor, options: { blobs?: BlobsInit; blobStore?: BlobStore } = {}): Promise<JobTestNode> {
    const rpc = new FakeRpcRouter(who.key, this.clock);
    const blobStore = options.blobStore ?? new MemoryBlobStore();
    const blobs = new Blobs({ rpc, store: blobStore }, options.blobs);
    await blobs.start();
    const admission = new Admission(this.config);
    admission.rebase(this.snapshot.get()!);
    const book = new RecordBook({
      store: this.store,
      key: who.key,
      network: this.config,
      clock: this.clock,
      lastFinal: new Store(-1),
      admission,
      countRefusal: () => {},
    });
    await book.start();
    rpc.answer = (to, request, options) => this.deliver(who.id, to, request, options);
    const ledger = {
      book,
      network: this.config,
      snapshot: this.snapshot,
      admission,
      currentBlock: () => this.block,
    };
    const node = { id: who.id, rpc, blobs, blobStore, book, admission, ledger };
    this.nodes.set(who.id, node);
    return node;
  }

  /** A request from `from` to `to`'s handler, as the wire would carry it. */
  private async deliver(from: string, to: string, request: RpcRequest, options: CallOptions): Promise<Json> {
    const target = this.nodes.get(to);
    if (!target || this.down.has(to)) throw new RpcError('timeout', `could not reach ${to}`);
    const method = target.rpc.served.get(options.protocol)?.methods[request.method];
    if (!method) throw new RpcError('unknown-method', `${to} serves no ${request.method}`);
    const wire = (v: Json) => JSON.parse(JSON.stringify(v)) as Json;
    const params = wire(request.params);
    const problem = method.check?.(params);
    if (problem) throw new RpcError('bad-params', problem);
    const garble = this.garbled.has(to);
    const result = await method.run(params, {
      peer: from,
      requestId: request.id,
      signal: options.signal ?? new AbortController().signal,
      emit: async (chunk) => options.onChunk?.(wire(garble ? garbled(chunk) : chunk)),
    });
    return wire(result);
  }
}

/** A job client on `who`'s node (started), keeping its jobs in `memory` if given. */
export async function jobClientOn(
  net: JobNet,
  who: Actor,
  options: { blobs?: BlobsInit; blobStore?: BlobStore; memory?: JobMemoryStore } = {},
) {
  const node = await net.node(who, options);
  const jobs = new JobClient({ ...node.ledger, blobs: node.blobs, memory: options.memory });
  jobs.start();
  await jobs.ready();
  return { ...node, jobs };
}

/**
 * A miner of `who` serving `model` on `engine`, with its JobMiner (not started: the test steps it). `fault` as the
 * Miner's; `tamper` rewrites the prompts it asks its Miner.
 */
export async function jobMinerOn(
  net: JobNet,
  who: Actor,
  model: string,
  engine: InferenceEngine,
  options: { fault?: 'random'; tamper?: (prompt: string) => string; blobStore?: BlobStore } = {},
) {
  const node = await net.node(who, { blobStore: options.blobStore });
  const miner = new Miner(
    { engine, rpc: node.rpc, key: who.key, availableModels: async () => [model] },
    { fault: options.fault ?? null, hub: '' },
  );
  await miner.serveModel(model, 'wasm');
  const tamper = options.tamper;
  const asked: Pick<Miner, 'answer' | 'model' | 'state'> = tamper
    ? {
        model: miner.model,
        state: miner.state,
        answer: (params, requestId, signal) =>
          miner.answer({ ...params, prompt: tamper(params.prompt) }, requestId, signal),
      }
    : miner;
  // The tests script which miner takes which shard: the lowest open one first.
  const jobs = new JobMiner({ ...node.ledger, blobs: node.blobs, miner: asked }, { shardOrder: 'lowest' });
  return { ...node, miner, jobs };
}

/** A validator of `who` auditing `subnet`'s jobs against `engine` (not started: the test steps it). */
export async function jobAuditorOn(net: JobNet, who: Actor, subnet: SubnetConfig, engine: InferenceEngine) {
  const node = await net.node(who);
  const audits = new JobAuditor({
    ...node.ledger,
    blobs: node.blobs,
    subnet,
    scoreLocally: (prompt, tokenIds) => engine.score(prompt, tokenIds),
  });
  return { ...node, audits };
}
