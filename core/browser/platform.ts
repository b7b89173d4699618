/**
 * The browser platform: identity slots with Web Locks, keys and ledger in IndexedDB (Dexie), replay and proof
 * of work in the consensus worker, models in the inference worker, and libp2p with WebRTC through the relay.
 */
import { multiaddr } from '@multiformats/multiaddr';
import { proxy } from 'comlink';
import { withPeerId, type Platform } from '../platform.ts';
import { claimSlot, SlotIdentity } from './identity.ts';
import { DexieBlobStore } from './blob-store.ts';
import { DexieJobMemoryStore } from './job-memory-store.ts';
import { DexieLedgerStore } from './ledger-store.ts';
import { createTabLibp2p } from './libp2p.ts';
import { workerInferenceEngine, yumaWorker } from './workers.ts';

export interface BrowserPlatformInit {
  /** ICE servers for WebRTC (empty on a local network; STUN/TURN for real deployments). */
  iceServers: RTCIceServer[];
}

export function createBrowserPlatform(init: BrowserPlatformInit): Platform {
  return {
    kind: 'browser',
    clock: { now: () => Date.now() },
    listens: false,
    claimIdentity: async () => new SlotIdentity(await claimSlot()),
    createLibp2p: (key, relays, bans) => createTabLibp2p(key, init.iceServers, relays, bans),
    async dialPeer(libp2p, { peer, relay, addrs }, signal) {
      // A peer with a listener of its own (a headless node) is dialled there; a tab through the relay, then WebRTC.
      if (addrs.length > 0) await libp2p.dial(multiaddr(withPeerId(addrs[0]!, peer)), { signal });
      else await libp2p.dial(multiaddr(`${relay.toString()}/p2p-circuit/webrtc/p2p/${peer}`), { signal });
    },
    async openLedger(identity, networkId) {
      const slot = identity.slot ?? 0;
      return {
        store: new DexieLedgerStore(slot, networkId),
        consensus: {
          computeLedger: (config, closeThrough) => yumaWorker().computeLedger(slot, config, closeThrough),
          solveRegistration: (puzzle, onProgress) =>
            yumaWorker().solveRegistration(puzzle, onProgress ? proxy(onProgress) : undefined),
        },
      };
    },
    openBlobs: async (identity) => new DexieBlobStore(identity.slot ?? 0),
    openJobMemory: async (identity, networkId) => new DexieJobMemoryStore(identity.slot ?? 0, networkId),
    inference: workerInferenceEngine,
    async availableModels() {
      const res = await fetch('/models/available.json');
      return ((await res.json()) as { models: string[] }).models;
    },
  };
}
