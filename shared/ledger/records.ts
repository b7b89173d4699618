/**
 * Ledger records: `{v, network, kind, author, seq, block, body, sig}`, signed by the author's libp2p Ed25519 key
 * over "webtensor/record/1\n" + RFC 8785 canonical JSON of everything but the signature. The record id is the
 * sha256 of those same bytes. `checkRecord` is the stateless check every record passes on arrival (schema,
 * network, signature, clock, proof of work); the replay (state.ts) adds the checks that need the ledger's state.
 */
import { WebtensorError } from '../errors.ts';
import canonicalize from 'canonicalize';
import { peerIdFromString } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { z } from 'zod';
import { fromBase64Url, toBase64Url } from '../p2p/signing.ts';
import { findSubnet, raoString, type NetworkConfig } from './config.ts';
import { proofOfWorkBits } from './pow.ts';

const peerId = z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{40,128}$/, 'expected a base58 peer id');
const netuid = z.number().int().min(0).max(1023);
const hex = (n: number) => z.string().regex(new RegExp(`^[0-9a-f]{${n}}$`), `expected ${n} hex digits`);
const uidList = z
  .array(z.number().int().min(0).max(4095))
  .max(4096)
  .refine((u) => u.every((x, i) => i === 0 || x > u[i - 1]!), 'uids must be strictly increasing');
const u16List = z.array(z.number().int().min(0).max(65535)).max(4096);
const positiveRao = raoString.refine((s) => s !== '0', 'amount must be more than 0');

/** Bounds of a batch job (docs/jobs.md): requests, shards (contiguous ranges of requests), tokens per request. */
export const MAX_JOB_REQUESTS = 100_000;
export const MAX_JOB_SHARDS = 256;
export const MAX_JOB_TOKENS = 32_768;
const jobId = hex(64);
const shardIndex = z
  .number()
  .int()
  .min(0)
  .max(MAX_JOB_SHARDS - 1);

export const bodySchemas = {
  /**
   * Take a UID: a proof of work bound to a recent checkpoint's hash, and the most rao the author will burn (the
   * subnet's price when the record is replayed is taken; more than `maxBurn` and the record is refused).
   */
  register: z.object({
    netuid,
    nonce: hex(16),
    role: z.enum(['miner', 'validator']),
    checkpoint: hex(64),
    maxBurn: raoString,
  }),
  'weights.commit': z.object({ netuid, hash: hex(64) }),
  'weights.reveal': z.object({ netuid, uids: uidList, values: u16List, salt: hex(32) }),
  'weights.set': z.object({ netuid, uids: uidList, values: u16List }),
  'stake.add': z.object({ hotkey: peerId, amount: positiveRao }),
  'stake.remove': z.object({ hotkey: peerId, amount: positiveRao }),
  transfer: z.object({ to: peerId, amount: positiveRao }),
  /** Test networks: draw test τ from the faucet account to the author's balance. */
  'faucet.claim': z.object({ amount: positiveRao }),
  /**
   * A permitted validator's vote that epoch `epoch` closed with these roots, chained to the previous checkpoint
   * (`previous` = checkpointHash of epoch - 1; the genesis hash for epoch 0). See docs/ledger.md, "Finality".
   */
  checkpoint: z.object({
    epoch: z.number().int().nonnegative(),
    recordsRoot: hex(64),
    stateRoot: hex(64),
    previous: hex(64),
  }),
  /**
   * A batch job (docs/jobs.md): `requests` requests of the subnet's model (the JSONL file whose sha256 is
   * `inputHash`), split into `shards` contiguous ranges, at `price` rao per request of at most `maxTokens` tokens.
   * The author deposits price × requests into the job's escrow. The job's id is this record's id.
   */
  'job.open': z
    .object({
      netuid,
      model: z.string().min(1).max(128),
      requests: z.number().int().min(1).max(MAX_JOB_REQUESTS),
      shards: z.number().int().min(1).max(MAX_JOB_SHARDS),
      inputHash: hex(64),
      price: positiveRao,
      maxTokens: z.number().int().min(1).max(MAX_JOB_TOKENS),
      deadline: z
        .number()
        .int()
        .min(0)
        .max(2 ** 40),
    })
    .refine((b) => b.shards <= b.requests, { path: ['shards'], message: 'a job has at most one shard per request' }),
  /** A miner takes a shard, locking a bond of PENALTY_MULTIPLE times the shard's payment from its balance. */
  'job.claim': z.object({ job: jobId, shard: shardIndex }),
  /** The claiming miner publishes the sha256 of the shard's signed results. */
  'job.result': z.object({ job: jobId, shard: shardIndex, resultsHash: hex(64) }),
  /** A permitted validator's audit of a shard's published results: the first one decides. */
  'job.audit': z.object({ job: jobId, shard: shardIndex, resultsHash: hex(64), pass: z.boolean() }),
  /** The client stops its job: what no miner holds returns at once, shards in flight may still finish. */
  'job.cancel': z.object({ job: jobId }),
} as const;
export type RecordKind = keyof typeof bodySchemas;
export const recordKinds = Object.keys(bodySchemas) as RecordKind[];
export type Body<K extends RecordKind> = z.infer<(typeof bodySchemas)[K]>;

const envelope = z.object({
  v: z.literal(1),
  network: z.string().max(32),
  kind: z.enum(recordKinds as [RecordKind, ...RecordKind[]]),
  author: peerId,
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  block: z
    .number()
    .int()
    .min(0)
    .max(2 ** 40),
  body: z.unknown(),
  sig: z.string().regex(/^[A-Za-z0-9_-]{1,200}$/, 'expected a base64url signature'),
});

export type LedgerRecord = {
  [K in RecordKind]: Omit<z.infer<typeof envelope>, 'kind' | 'body'> & { kind: K; body: Body<K> };
}[RecordKind];
export type UnsignedRecord = LedgerRecord extends infer R ? (R extends unknown ? Omit<R, 'sig'> : never) : never;

const DOMAIN = 'webtensor/record/1\n';

/**
 * The most bytes a record's JSON may take. The largest honest record, a reveal of 4096 weights, is about 45 KB;
 * with this bound any one record fits in a 64 KiB frame of sync or gossip with room for the frame's envelope.
 */
export const MAX_RECORD_BYTES = 48 * 1024;
const encoder = new TextEncoder();

export function signedBytes(record: UnsignedRecord | LedgerRecord): Uint8Array {
  const { v, network, kind, author, seq, block, body } = record;
  const text = canonicalize({ v, network, kind, author, seq, block, body });
  if (text === undefined) throw new Error('record cannot be canonicalised');
  return encoder.encode(DOMAIN + text);
}

/** A record's id: sha256 of its signed bytes, hex. */
export function recordId(record: LedgerRecord): string {
  return bytesToHex(sha256(signedBytes(record)));
}

async function verifySignature(record: LedgerRecord): Promise<boolean> {
  try {
    const key = peerIdFromString(record.author).publicKey;
    return !!key && (await key.verify(signedBytes(record), fromBase64Url(record.sig)));
  } catch {
    return false;
  }
}

export async function signRecord(key: PrivateKey, record: UnsignedRecord): Promise<LedgerRecord> {
  return { ...record, sig: toBase64Url(await key.sign(signedBytes(record))) } as LedgerRecord;
}

/** Why a record was refused; codes are stable (tests and peers' reputations use them). */
export type RefusalCode =
  | 'malformed'
  | 'other-network'
  | 'bad-signature'
  | 'future-block'
  | 'stale-block'
  | 'bad-pow'
  | 'unknown-subnet'
  | 'replay'
  | 'overspend'
  | 'not-registered'
  | 'no-permit'
  | 'subnet-full'
  | 'already-registered'
  | 'bad-reveal'
  | 'wrong-window'
  | 'bad-weights'
  // author chains and finality (docs/ledger.md, "Author chains", "Finality")
  | 'sequence-gap'
  | 'backdated'
  | 'equivocation'
  | 'equivocated-author'
  | 'final'
  | 'not-final'
  | 'bad-checkpoint'
  | 'no-faucet'
  // admission (docs/ledger.md, "Admission")
  | 'too-large'
  | 'quota'
  | 'second-vote'
  // registration priced by demand (docs/ledger.md, "Registration")
  | 'registration-limit'
  | 'stale-proof'
  | 'underpriced'
  // batch jobs (docs/jobs.md)
  | 'wrong-model'
  | 'bad-deadline'
  | 'job-limit'
  | 'unknown-job'
  | 'job-closed'
  | 'bad-shard'
  | 'shard-taken'
  | 'claim-limit'
  | 'not-claimant'
  | 'bad-audit'
  | 'not-client';

export class RecordRefused extends WebtensorError<RefusalCode> {
  override name = 'RecordRefused';
}

export interface ArrivalContext {
  /** The receiver's current block. */
  nowBlock: number;
  /**
   * Records before this block are refused: the first block after the last final epoch (nothing may change a
   * final epoch), or, for gossip, the network's clock minus the gossip window if that is later.
   */
  minBlock: number;
  /** Why `minBlock` is what it is, for the refusal's code: the last final epoch, or the gossip window. */
  minBlockReason?: 'final' | 'gossip-window';
}

/**
 * Stateless checks, in order: shape, network, signature, clock, subnet, proof of work. Throws RecordRefused
 * naming what is wrong; returns the typed record and its id.
 */
export async function checkRecord(
  raw: unknown,
  config: NetworkConfig,
  at: ArrivalContext,
): Promise<{ record: LedgerRecord; id: string }> {
  const size = encoder.encode(JSON.stringify(raw) ?? '').byteLength;
  if (size > MAX_RECORD_BYTES)
    throw new RecordRefused('too-large', `the record is ${size} bytes; at most ${MAX_RECORD_BYTES} are allowed`);
  const env = envelope.safeParse(raw);
  if (!env.success) {
    const issue = env.error.issues[0]!;
    throw new RecordRefused('malformed', `${issue.path.join('.') || '(record)'}: ${issue.message}`);
  }
  const body = bodySchemas[env.data.kind].safeParse(env.data.body);
  if (!body.success) {
    const issue = body.error.issues[0]!;
    throw new RecordRefused('malformed', `body.${issue.path.join('.')}: ${issue.message}`);
  }
  const record = { ...env.data, body: body.data } as LedgerRecord;
  if (record.network !== config.networkId)
    throw new RecordRefused('other-network', `record is for network "${record.network}", not "${config.networkId}"`);
  if (!(await verifySignature(record)))
    throw new RecordRefused('bad-signature', "the signature does not verify against the author's key");
  if (record.block > at.nowBlock + config.clockSkewBlocks)
    throw new RecordRefused('future-block', `block ${record.block} is ahead of this node's block ${at.nowBlock}`);
  if (record.block < at.minBlock)
    throw at.minBlockReason === 'final'
      ? new RecordRefused('final', `block ${record.block} is in a final epoch (final through block ${at.minBlock - 1})`)
      : new RecordRefused(
          'stale-block',
          `block ${record.block} is more than the gossip window behind this node's block ${at.nowBlock}`,
        );
  if ('netuid' in record.body) {
    const subnet = findSubnet(config, record.body.netuid);
    if (!subnet) throw new RecordRefused('unknown-subnet', `there is no subnet ${record.body.netuid}`);
    if ('uids' in record.body && record.body.uids.length > subnet.maxUids)
      throw new RecordRefused(
        'malformed',
        `body.uids: ${record.body.uids.length} weights, but subnet ${subnet.netuid} has at most ${subnet.maxUids} UIDs`,
      );
    // The subnet's floor, statelessly (the replay checks the difficulty the price rule has reached).
    if (record.kind === 'register' && proofOfWorkBits(config.networkId, record) < subnet.registrationDifficulty)
      throw new RecordRefused('bad-pow', `the proof of work does not reach ${subnet.registrationDifficulty} bits`);
    if (record.kind === 'job.open' && record.body.model !== subnet.model)
      throw new RecordRefused(
        'wrong-model',
        `subnet ${subnet.netuid} serves ${subnet.model}, not ${record.body.model}`,
      );
  }
  return { record, id: recordId(record) };
}
