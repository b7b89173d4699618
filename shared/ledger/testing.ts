/** Helpers for tests and benchmarks: keys, a small config, and signed records with valid proofs of work. */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { NetworkConfig } from './config.ts';
import { faucetKey } from './faucet.ts';
import { testProfile } from './profiles.ts';
import { solveProofOfWork } from './pow.ts';
import { recordId, signRecord, type LedgerRecord, type RecordKind, type Body } from './records.ts';
import type { StoredRecord } from './replay.ts';
import { weightsCommitHash } from './state.ts';

export interface Actor {
  key: PrivateKey;
  id: string;
  seq: number;
}

export async function actor(key?: PrivateKey): Promise<Actor> {
  const k = key ?? (await generateKeyPair('Ed25519'));
  return { key: k, id: peerIdFromPrivateKey(k).toString(), seq: 0 };
}

export function smallConfig(over: Partial<NetworkConfig> = {}): NetworkConfig {
  const base = testProfile(0);
  return { ...base, subnets: base.subnets.map((s) => ({ ...s, registrationDifficulty: 4 })), ...over };
}

export async function faucet(config: NetworkConfig): Promise<Actor> {
  return actor(await faucetKey(config));
}

/** Sign a record of `kind` by `who` at `block` (next sequence number unless `seq` is given). */
export async function make<K extends RecordKind>(
  config: NetworkConfig,
  who: Actor,
  kind: K,
  block: number,
  body: Body<K>,
  seq?: number,
): Promise<StoredRecord> {
  const record = (await signRecord(who.key, {
    v: 1,
    network: config.networkId,
    kind,
    author: who.id,
    seq: seq ?? ++who.seq,
    block,
    body,
  } as never)) as LedgerRecord;
  return { id: recordId(record), record };
}

export async function registration(
  config: NetworkConfig,
  who: Actor,
  block: number,
  role: 'miner' | 'validator',
  netuid = 1,
): Promise<StoredRecord> {
  const difficulty = config.subnets.find((s) => s.netuid === netuid)!.registrationDifficulty;
  const { nonce } = await solveProofOfWork({ network: config.networkId, netuid, author: who.id, block, difficulty });
  return make(config, who, 'register', block, { netuid, nonce, role });
}

/** A commit in an epoch's first half and the matching reveal in its second half. */
export async function commitReveal(
  config: NetworkConfig,
  who: Actor,
  epoch: number,
  uids: number[],
  values: number[],
  netuid = 1,
): Promise<StoredRecord[]> {
  const tempo = config.subnets.find((s) => s.netuid === netuid)!.tempo;
  const salt = '0123456789abcdef0123456789abcdef';
  const hash = weightsCommitHash({ netuid, uids, values, salt });
  return [
    await make(config, who, 'weights.commit', epoch * tempo + 1, { netuid, hash }),
    await make(config, who, 'weights.reveal', epoch * tempo + Math.ceil(tempo / 2) + 1, { netuid, uids, values, salt }),
  ];
}
