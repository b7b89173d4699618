/**
 * The Node platform: a key file in the data directory, a WebSocket listener, replay and proof of work in the
 * process, the ledger in memory or, for headless nodes, in SQLite in the data directory, and (when asked) the
 * inference engine of inference.ts.
 */
import { multiaddr } from '@multiformats/multiaddr';
import { solveProofOfWork } from '../../shared/ledger/pow.ts';
import { CheckpointedReplay } from '../../shared/ledger/checkpointed-replay.ts';
import { snapshotOf } from '../../shared/ledger/snapshot.ts';
import { MemoryLedgerStore } from '../memory-ledger-store.ts';
import { withPeerId, type BlobStore, type Clock, type LedgerStore, type Platform } from '../platform.ts';
import { join } from 'node:path';
import { FileBlobStore } from './file-blob-store.ts';
import { NodeInferenceEngine } from './inference.ts';
import { KeyFileIdentity } from './key-file.ts';
import { SqliteLedgerStore } from './sqlite-ledger-store.ts';
import { SqliteJobMemoryStore } from './sqlite-job-memory.ts';
import { MemoryJobMemoryStore } from '../services/job-memory.ts';
import { createNodeLibp2p } from './libp2p.ts';

export interface NodePlatformInit {
  /** Where the key lives. */
  dataDir: string;
  /** Listen address (default 127.0.0.1, any free port). */
  host?: string;
  port?: number;
  /** No listener of its own (a node behind NAT): peers reach it, and it reaches tabs, by WebRTC. */
  noListener?: boolean;
  clock?: Clock;
  /** Where the ledger lives; default: in memory, or on disk with `durable`. */
  store?: LedgerStore;
  /**
   * Keep the ledger in `<dataDir>/ledger-<network>.sqlite`, and what batch jobs remember across restarts in
   * `<dataDir>/jobs-<network>.sqlite` (both survive restarts and kill -9).
   */
  durable?: boolean;
  /** Run models (miners and validators need to): transformers.js on onnxruntime-web WASM, models from disk. */
  inference?: NodeInferenceEngine;
  /** Where blobs live; default: files in `<dataDir>/blobs`. */
  blobs?: BlobStore;
}

export function createNodePlatform(init: NodePlatformInit): Platform {
  return {
    kind: 'node',
    clock: init.clock ?? { now: () => Date.now() },
    listens: !init.noListener,
    claimIdentity: async () => new KeyFileIdentity(init.dataDir),
    createLibp2p: (key, relays, bans) =>
      createNodeLibp2p(key, {
        relays: relays ?? 1,
        bans,
        listen: init.noListener ? null : { host: init.host ?? '127.0.0.1', port: init.port ?? 0 },
      }),
    async dialPeer(libp2p, { peer, relay, addrs }, signal) {
      // As a tab does: a peer's own listener first, else WebRTC signalled through the relay.
      if (addrs.length > 0) await libp2p.dial(multiaddr(withPeerId(addrs[0]!, peer)), { signal });
      else await libp2p.dial(multiaddr(`${relay.toString()}/p2p-circuit/webrtc/p2p/${peer}`), { signal });
    },
    async openLedger(_identity, networkId) {
      const store =
        init.store ??
        (init.durable
          ? SqliteLedgerStore.open(join(init.dataDir, `ledger-${networkId.replace(/[^A-Za-z0-9_-]/g, '_')}.sqlite`))
          : new MemoryLedgerStore());
      // Replays continue from the last state final by votes (shared/ledger/checkpointed-replay.ts).
      const replays = new CheckpointedReplay();
      const source = {
        recordsFrom: async (block: number) => {
          const rows = await store.get((await store.keysFrom(block)).map((k) => k.id));
          return rows.filter((r) => r !== undefined);
        },
        joinedBase: () => store.base(),
      };
      return {
        store,
        consensus: {
          async computeLedger(config, closeThrough) {
            const start = performance.now();
            const { result } = await replays.run(config, source, closeThrough);
            return snapshotOf(result, await store.count(), closeThrough, performance.now() - start);
          },
          async solveRegistration(puzzle, onProgress) {
            const start = performance.now();
            const begin = BigInt(Math.floor(Math.random() * 2 ** 32)) << 16n;
            const found = await solveProofOfWork({ ...puzzle, start: begin }, onProgress);
            return { ...found, ms: performance.now() - start };
          },
        },
      };
    },
    openBlobs: async () => init.blobs ?? new FileBlobStore(join(init.dataDir, 'blobs')),
    openJobMemory: async (_identity, networkId) =>
      init.durable
        ? new SqliteJobMemoryStore(join(init.dataDir, `jobs-${networkId.replace(/[^A-Za-z0-9_-]/g, '_')}.sqlite`))
        : new MemoryJobMemoryStore(),
    inference: init.inference ?? null,
    availableModels: async () => init.inference?.available() ?? [],
  };
}
