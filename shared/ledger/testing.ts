/** Helpers for tests and benchmarks: keys, a small config, and signed records with valid proofs of work. */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { NetworkConfig } from './config.ts';
import { testProfile } from './profiles.ts';
import { solveProofOfWork } from './pow.ts';
import { recordId, signRecord, type LedgerRecord, type RecordKind, type Body } from './records.ts';
import { replay, type StoredRecord } from './replay.ts';
import { genesisHash, weightsCommitHash } from './state.ts';

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
  // Registration by proof of work alone (no burn): tests fund only the keys whose balance they are about.
  const subnets = base.subnets.map((s) => ({
    ...s,
    registrationDifficulty: 4,
    registration: { ...s.registration, minBurn: '0', maxDifficulty: 8 },
  }));
  return { ...base, subnets, ...over };
}

/** A faucet claim: `who` draws `amount` rao of test τ (test profile only). */
export function claim(config: NetworkConfig, who: Actor, block: number, amount: bigint): Promise<StoredRecord> {
  return make(config, who, 'faucet.claim', block, { amount: amount.toString() });
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

/**
 * A register record at `block` with a proof of work at the subnet's floor difficulty, bound to `checkpoint` (by
 * default the genesis hash, which the replay takes in the network's first RECENT_CHECKPOINT_EPOCHS epochs) and
 * offering to burn up to the subnet's ceiling.
 */
export async function registration(
  config: NetworkConfig,
  who: Actor,
  block: number,
  role: 'miner' | 'validator',
  netuid = 1,
  checkpoint = genesisHash(config),
  difficulty = config.subnets.find((s) => s.netuid === netuid)!.registrationDifficulty,
): Promise<StoredRecord> {
  const subnet = config.subnets.find((s) => s.netuid === netuid)!;
  const { nonce } = await solveProofOfWork({
    network: config.networkId,
    netuid,
    author: who.id,
    checkpoint,
    difficulty,
  });
  return make(config, who, 'register', block, {
    netuid,
    nonce,
    role,
    checkpoint,
    maxBurn: subnet.registration.maxBurn,
  });
}

/**
 * A commit in epoch `epoch`'s first half and the matching reveal in the second half of the next epoch (it counts
 * only if `epoch` is final by then: see `votes`). The caller keeps each author's records in block order.
 */
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
    await make(config, who, 'weights.reveal', (epoch + 1) * tempo + Math.ceil(tempo / 2) + 1, {
      netuid,
      uids,
      values,
      salt,
    }),
  ];
}

/** Each voter's vote that `epoch` closed as a replay of `records` says, signed at `block` (after the epoch). */
export async function votes(
  config: NetworkConfig,
  records: readonly StoredRecord[],
  epoch: number,
  voters: Actor[],
  block: number,
): Promise<StoredRecord[]> {
  const view = replay(config, records, block).checkpoints.find((c) => c.epoch === epoch);
  if (!view) throw new Error(`epoch ${epoch} has not closed by block ${block}`);
  const { recordsRoot, stateRoot, previous } = view;
  return Promise.all(
    voters.map((v) => make(config, v, 'checkpoint', block, { epoch, recordsRoot, stateRoot, previous })),
  );
}

/**
 * Honest validators over epochs `from`..`to`, in block order: each commits `weights(v, e)` at the start of epoch
 * e (for e < to), votes at the end of the grace on the checkpoint of e - 1, and reveals the commit of e - 1 when
 * reveals open. Returns `records` with all of that appended.
 */
export async function honestEpochs(
  config: NetworkConfig,
  records: readonly StoredRecord[],
  validators: Actor[],
  from: number,
  to: number,
  uids: number[],
  weights: (v: Actor, epoch: number) => number[] | null,
  netuid = 1,
): Promise<StoredRecord[]> {
  const tempo = config.subnets.find((s) => s.netuid === netuid)!.tempo;
  const salt = '0123456789abcdef0123456789abcdef';
  const out = [...records];
  for (let e = from; e <= to; e++) {
    if (e < to)
      for (const v of validators) {
        const values = weights(v, e);
        if (values)
          out.push(
            await make(config, v, 'weights.commit', e * tempo + 1, {
              netuid,
              hash: weightsCommitHash({ netuid, uids, values, salt }),
            }),
          );
      }
    if (e >= 1) out.push(...(await votes(config, out, e - 1, validators, e * tempo + config.graceBlocks + 1)));
    if (e > from)
      for (const v of validators) {
        const values = weights(v, e - 1);
        if (values)
          out.push(
            await make(config, v, 'weights.reveal', e * tempo + Math.ceil(tempo / 2) + 1, {
              netuid,
              uids,
              values,
              salt,
            }),
          );
      }
  }
  return out;
}

/**
 * A small network to join: two validators with equal stake and a miner registered in epoch 0, a payer's transfer
 * in epoch 5, and honest epochs 1..`to` (votes, commits, reveals). Epochs through `to - 2` or so end voted final.
 */
export async function joinableNetwork(config: NetworkConfig, to = 7) {
  const tempo = config.subnets[0]!.tempo;
  const miner = await actor();
  const [v1, v2] = [await actor(), await actor()];
  const payer = await actor();
  let records: StoredRecord[] = [await registration(config, miner, 1, 'miner')];
  for (const [k, v] of [v1, v2].entries()) {
    records.push(await registration(config, v, 2 + k, 'validator'));
    records.push(await claim(config, v, 4, 2_000_000_000_000n));
    records.push(await make(config, v, 'stake.add', 5, { hotkey: v.id, amount: '1000000000000' }));
  }
  records.push(await claim(config, payer, 6, 1_000_000n));
  records.push(await make(config, payer, 'transfer', 5 * tempo + 3, { to: miner.id, amount: '1000' }));
  records = await honestEpochs(config, records, [v1, v2], 1, to, [0], () => [65535]);
  return { records, validators: [v1, v2] as [Actor, Actor], miner, payer };
}
