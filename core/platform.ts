/**
 * What differs between a browser tab and a Node process, as small interfaces. The node core (`core/services`)
 * only ever talks to these; `core/browser` implements them with Dexie, Web Workers and Web Locks, `core/nodejs`
 * with files, the process itself and a WebSocket listener. Everything else is the same code in both places.
 */
import type { GossipSub } from '@libp2p/gossipsub';
import type { Identify } from '@libp2p/identify';
import type { PrivateKey } from '@libp2p/interface';
import type { Ping } from '@libp2p/ping';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { Libp2p } from 'libp2p';
import { NodeError } from '../shared/errors.ts';
import type { InferenceEngine } from '../shared/inference/engine.ts';
import type { NetworkConfig } from '../shared/ledger/config.ts';
import type { StoredRecordRow } from '../shared/ledger/db.ts';
import type { JoinedBase } from '../shared/ledger/join.ts';
import type { PeerBans } from './peer-bans.ts';
import type { PowProgress } from '../shared/ledger/pow.ts';
import type { LedgerSnapshot } from '../shared/ledger/snapshot.ts';

export type NodeLibp2pServices = { identify: Identify; ping: Ping; pubsub: GossipSub };
export type Libp2pNode = Libp2p<NodeLibp2pServices>;

/** Milliseconds since the epoch; the block clock is derived from it. Tests may hand in their own. */
export interface Clock {
  now(): number;
}

/** Where this node's identity lives: a tab's slot (Web Locks + IndexedDB) or a data directory (a key file). */
export interface Identity {
  /** The tab's slot number, or null outside a browser. */
  readonly slot: number | null;
  /** The node's Ed25519 key, created on first use and the same on every later start. */
  loadOrCreateKey(): Promise<PrivateKey>;
  /** Replace the stored key (takes effect on the next start). */
  saveKey(key: PrivateKey): Promise<void>;
}

/** The records of one network this node holds, and the epochs its replays closed. */
export interface LedgerStore {
  count(): Promise<number>;
  /** The rows with these ids, in order (undefined where not held). */
  get(ids: readonly string[]): Promise<(StoredRecordRow | undefined)[]>;
  /** Store rows that passed every check; ids already held are kept as they are. */
  put(rows: readonly StoredRecordRow[]): Promise<void>;
  /** Remove rows (records a final checkpoint does not hold). */
  delete(ids: readonly string[]): Promise<void>;
  all(): Promise<StoredRecordRow[]>;
  /**
   * The block and id of every row at or after block `from`, ordered by block, then id (sync's index of what this
   * node holds: read from an index, without the records).
   */
  keysFrom(from: number): Promise<{ block: number; id: string }[]>;
  byAuthor(author: string): Promise<StoredRecordRow[]>;
  /** The newest rows by arrival, newest first. */
  recent(limit: number): Promise<StoredRecordRow[]>;
  /** The checkpoint this node joined from (replays start there), or null: replays start at genesis. */
  base(): Promise<JoinedBase | null>;
  /** Keep `base` (replacing any) and remove every row before block `dropBelow` (history the base replaces). */
  setBase(base: JoinedBase, dropBelow: number): Promise<void>;
}

/** A blob (or a partial download) and its size in bytes. */
export interface BlobInfo {
  hash: string;
  size: number;
}

/**
 * Content-addressed files held off the ledger (batch jobs' request and result files), named by the sha256 of their
 * bytes (64 lowercase hex characters; any other name is refused). Beside the blobs, a partial area keyed by the hash
 * a download should have: bytes are appended there as they arrive, and the download becomes a blob only if all of
 * them hash to its name (core/services/blobs.ts; the quota is the service's to enforce).
 */
export interface BlobStore {
  /** The platform's default limit on stored plus partial bytes (the Blobs service may be given another). */
  readonly quotaBytes: number;
  /** Store `bytes` (kept as they are if already held); resolves to their sha256. */
  put(bytes: Uint8Array): Promise<string>;
  has(hash: string): Promise<boolean>;
  /** The blob's size, or null when it is not held. */
  size(hash: string): Promise<number | null>;
  /** Up to `length` bytes from `offset` (fewer at the end); refuses a blob not held or an offset past its end. */
  read(hash: string, offset: number, length: number): Promise<Uint8Array>;
  /** Remove the blob (nothing happens if it is not held). */
  delete(hash: string): Promise<void>;
  list(): Promise<BlobInfo[]>;
  /** Bytes held: complete blobs, and partial downloads. */
  usage(): Promise<{ stored: number; partial: number }>;
  /** Bytes of the partial download of `hash` held (0: none). */
  partialSize(hash: string): Promise<number>;
  /** Append to the partial download of `hash` (created if need be). */
  appendPartial(hash: string, bytes: Uint8Array): Promise<void>;
  /**
   * Hash the partial download of `hash` (none: no bytes): if its bytes hash to `hash` it becomes the blob, otherwise
   * it is deleted. Resolves to the hash the bytes have.
   */
  completePartial(hash: string): Promise<string>;
  deletePartial(hash: string): Promise<void>;
  listPartials(): Promise<BlobInfo[]>;
}

/**
 * What a node's batch-job services keep across restarts (a client's jobs as it last saw them: docs/jobs.md), as JSON
 * text by key, for one identity and network: SQLite in the data directory (Node), IndexedDB (a tab). The store only
 * keeps text; its reader checks every value it reads back.
 */
export interface JobMemoryStore {
  /** Every value kept, in no particular order. */
  all(): Promise<{ key: string; value: string }[]>;
  /** Keep `value` under `key`, replacing any. */
  put(key: string, value: string): Promise<void>;
  /** Remove these keys (those not kept are ignored). */
  delete(keys: readonly string[]): Promise<void>;
}

/** A registration's proof of work: see shared/ledger/pow.ts. */
export interface RegistrationPuzzle {
  network: string;
  netuid: number;
  author: string;
  /** The recent checkpoint's hash the proof is bound to. */
  checkpoint: string;
  difficulty: number;
}

/** Replay and proof of work, off the thread that talks to peers where the platform has one. */
export interface ConsensusEngine {
  /** Replay the store's records for `config` and close every epoch through block `closeThrough`. */
  computeLedger(config: NetworkConfig, closeThrough: number): Promise<LedgerSnapshot>;
  solveRegistration(
    puzzle: RegistrationPuzzle,
    onProgress?: (p: PowProgress) => void,
  ): Promise<{ nonce: string; hashes: number; ms: number }>;
}

/** Where to reach a peer: its id, the relay both hold reservations on, and any addresses it listens on. */
export interface DialTarget {
  peer: string;
  relay: Multiaddr;
  addrs: readonly string[];
}

export interface Platform {
  readonly kind: 'browser' | 'node';
  readonly clock: Clock;
  /** Claim this node's identity (a tab takes the first free slot; a process its data directory). */
  claimIdentity(): Promise<Identity>;
  /**
   * libp2p with this key, holding a circuit reservation on each of `relays` relays (at least one), refusing the
   * peers in `bans` (core/peer-bans.ts).
   */
  createLibp2p(key: PrivateKey, relays?: number, bans?: PeerBans): Promise<Libp2pNode>;
  /** Whether others can dial this node on an address of its own (a listener), not only through the relay. */
  readonly listens: boolean;
  /** Open a direct connection to a peer: WebRTC signalled through the relay, or the peer's own addresses. */
  dialPeer(libp2p: Libp2pNode, target: DialTarget, signal: AbortSignal): Promise<void>;
  /** Storage and replay for one network, for the identity claimed. */
  openLedger(identity: Identity, networkId: string): Promise<{ store: LedgerStore; consensus: ConsensusEngine }>;
  /** Content-addressed files for the identity claimed (`<data>/blobs` in Node, IndexedDB in a tab). */
  openBlobs?(identity: Identity): Promise<BlobStore>;
  /** What the batch-job services keep across restarts, for the identity claimed and one network. */
  openJobMemory?(identity: Identity, networkId: string): Promise<JobMemoryStore>;
  /** The inference engine, or null where this platform cannot run models (yet). */
  readonly inference: InferenceEngine | null;
  /** Models this machine can serve without downloading (best first is up to the caller). */
  availableModels(): Promise<string[]>;
}

/** A blob's name: the sha256 of its bytes, 64 lowercase hex characters. */
export const BLOB_HASH = /^[0-9a-f]{64}$/;

/** Refuse anything but a blob's name (a store never turns another string into a path or a key). */
export function checkBlobHash(hash: string): void {
  if (typeof hash !== 'string' || !BLOB_HASH.test(hash))
    throw new NodeError(
      'bad-input',
      `a blob is named by the sha256 of its bytes, 64 lowercase hex characters; got ${JSON.stringify(String(hash).slice(0, 80))}`,
    );
}

/** `addr` ending in `/p2p/<peer>`, so a dial checks it reached that peer. */
export const withPeerId = (addr: string, peer: string): string =>
  addr.includes('/p2p/') ? addr : `${addr}/p2p/${peer}`;
