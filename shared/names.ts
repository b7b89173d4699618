/**
 * Every name two nodes must agree on, defined once: libp2p protocol ids, gossipsub topics and the error codes
 * of the wire protocols. Record kinds and their refusal codes live with the records (`ledger/records.ts`).
 * docs/protocol.md describes each protocol; changing a string here is a protocol change.
 */

export const PROTOCOLS = {
  /** Signed request/response with streamed chunks (node.echo, node.info, node.count). */
  rpc: '/webtensor/rpc/1',
  /** The relay's list of peers holding a reservation (and the addresses they can be dialled at). */
  peers: '/webtensor/peers/1',
  /** Throughput measurement: raw bytes in, one receipt frame out. */
  benchSink: '/webtensor/bench-sink/1',
  /** infer.generate: a miner generates for a peer and signs the result. */
  infer: '/webtensor/infer/1',
  /** Ledger anti-entropy (sync.reconcile, sync.records) and what joining and finality fetch. */
  sync: '/webtensor/sync/1',
  /** validator.audit: a client hands a validator a miner's signed answer to check (the gateway's audit). */
  audit: '/webtensor/audit/1',
  /**
   * forward.generate: a permitted validator asks a peer to send an infer.generate to a registered miner from the
   * peer's own key and hand back the miner's signed answer (challenges a miner cannot tell from users' requests).
   */
  forward: '/webtensor/forward/1',
  /** blob.get: content-addressed files (batch jobs' request and result files) by sha256, in resumable chunks. */
  blobs: '/webtensor/blobs/1',
} as const;

export const TOPICS = {
  /** Free-text announcements between nodes (the mesh demo and tests). */
  announce: 'webtensor/local/announce/1',
  /** Signed ledger records of one network. */
  records: (networkId: string) => `webtensor/${networkId}/records/1`,
} as const;

/** Error codes a peer may send back on `/webtensor/rpc/1`, `/infer/1` and `/sync/1` (docs/protocol.md). */
export const RPC_ERROR_CODES = [
  'too-large',
  'bad-frame',
  'bad-schema',
  'bad-signature',
  'wrong-sender',
  'stale',
  'replay',
  'rate-limited',
  'unknown-method',
  'bad-params',
  'unsupported-model',
  'busy',
  'cancelled',
  'timeout',
  'internal',
] as const;
export type RpcErrorCode = (typeof RPC_ERROR_CODES)[number];

/** Error codes of a node itself (start-up, configuration, roles), shown to people and used by tests. */
export const NODE_ERROR_CODES = [
  'bad-config',
  'no-relay',
  'relay-address',
  'network-config',
  'no-network',
  'storage',
  'identity',
  'not-started',
  'role-taken',
  'no-inference',
  'bad-model',
  'no-miner',
  'insufficient-funds',
  'bad-input',
  'unreachable',
  'cancelled',
] as const;
export type NodeErrorCode = (typeof NODE_ERROR_CODES)[number];

/** Error codes of model loading and generation (the inference engine). */
export const INFERENCE_ERROR_CODES = [
  'unknown-model',
  'model-file',
  'hub-unreachable',
  'no-model-loaded',
  'worker-busy',
  'bad-params',
] as const;
export type InferenceErrorCode = (typeof INFERENCE_ERROR_CODES)[number];
