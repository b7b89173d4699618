/**
 * The Node platform: a key file in the data directory, a WebSocket listener, replay and proof of work in the
 * process, and the ledger in memory (a durable store comes with headless nodes). No inference engine yet.
 */
import { multiaddr } from '@multiformats/multiaddr';
import { solveProofOfWork } from '../../shared/ledger/pow.ts';
import { replay } from '../../shared/ledger/replay.ts';
import { snapshotOf } from '../../shared/ledger/snapshot.ts';
import { NodeError } from '../../shared/errors.ts';
import { MemoryLedgerStore } from '../memory-ledger-store.ts';
import { withPeerId, type Clock, type LedgerStore, type Platform } from '../platform.ts';
import { KeyFileIdentity } from './key-file.ts';
import { createNodeLibp2p } from './libp2p.ts';

export interface NodePlatformInit {
  /** Where the key lives. */
  dataDir: string;
  /** Listen address (default 127.0.0.1, any free port). */
  host?: string;
  port?: number;
  clock?: Clock;
  /** Where the ledger lives; default: in memory. */
  store?: LedgerStore;
}

export function createNodePlatform(init: NodePlatformInit): Platform {
  return {
    kind: 'node',
    clock: init.clock ?? { now: () => Date.now() },
    listens: true,
    claimIdentity: async () => new KeyFileIdentity(init.dataDir),
    createLibp2p: (key) => createNodeLibp2p(key, { host: init.host ?? '127.0.0.1', port: init.port ?? 0 }),
    async dialPeer(libp2p, { peer, addrs }, signal) {
      if (addrs.length === 0)
        throw new NodeError('unreachable', `${peer} listens on no address of its own, and this node has no WebRTC.`);
      await libp2p.dial(multiaddr(withPeerId(addrs[0]!, peer)), { signal });
    },
    async openLedger() {
      const store = init.store ?? new MemoryLedgerStore();
      return {
        store,
        consensus: {
          async computeLedger(config, closeThrough) {
            const start = performance.now();
            const rows = await store.all();
            return snapshotOf(replay(config, rows, closeThrough), rows.length, closeThrough, performance.now() - start);
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
    inference: null,
    availableModels: async () => [],
  };
}
