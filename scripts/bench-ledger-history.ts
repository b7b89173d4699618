/**
 * A synthetic production history for `npm run bench:ledger` (issue 13, item 7): production timing (12 s blocks,
 * tempo 360: a day is 20 epochs), one subnet of 256 UIDs whose 64 validators commit every epoch, reveal weights
 * over all 256 UIDs and vote on every checkpoint (so every epoch becomes final by votes), and a few dozen
 * transfers and stakes per epoch by 32 users.
 *
 * The bench config is the production profile with three changes, all outside timing and consensus: its own
 * network id, subnet 2 left out (one subnet), initial balances for the bench's keys (production starts with
 * none), and a registration proof of work of 8 bits instead of 20 (256 proofs at 20 bits take minutes).
 *
 * Generated epoch by epoch: each epoch's checkpoint comes from a replay of that epoch's records alone, continuing
 * from the state at the close of the epoch before (replay with a base, as checkpointed-replay.ts does), so the
 * cost is linear in the history. Keys are derived from fixed seeds; the records are cached as JSON lines under
 * `.bench/`, and reused while the cache is younger than BENCH_HISTORY_MAX_AGE_H hours (default 6: the genesis is
 * fixed when it is written, so an old cache's "now" lies epochs past its last vote).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { parseNetworkConfig, type NetworkConfig } from '../shared/ledger/config.ts';
import { productionProfile } from '../shared/ledger/profiles.ts';
import type { LedgerRecord, RecordKind, Body } from '../shared/ledger/records.ts';
import { replay, type ReplayBase, type StoredRecord } from '../shared/ledger/replay.ts';
import { weightsCommitHash } from '../shared/ledger/state.ts';
import { actor, make, registration, type Actor } from '../shared/ledger/testing.ts';

export const VALIDATORS = 64;
export const UIDS = 256;
export const USERS = 32;
/** Transfers and stake changes per epoch, by the users. */
export const TRANSFERS_PER_EPOCH = 24;
export const STAKE_OPS_PER_EPOCH = 8;
/** The bench's registration proof of work (production: 20 bits). */
export const BENCH_DIFFICULTY = 8;
const SALT = '0123456789abcdef0123456789abcdef';
const TAO = 1_000_000_000n;
/** The clock of a fresh cache stands this many blocks into the epoch after the history (its votes are dated +6). */
const NOW_OFFSET = 8;

export interface HistoryActors {
  validators: Actor[];
  miners: Actor[];
  users: Actor[];
}

export interface History {
  config: NetworkConfig;
  /** Epochs 0..epochs-1 are in the history; the last record is the vote on epochs-1, dated in epoch `epochs`. */
  epochs: number;
  days: number;
  records: StoredRecord[];
  actors: HistoryActors;
  /** How long generating it took (ms), and when (ISO), and whether this run read it from the cache. */
  generationMs: number;
  generatedAt: string;
  cached: boolean;
  file: string;
}

const seedOf = (name: string) =>
  new Uint8Array(createHash('sha256').update(`webtensor bench history/${name}`).digest());

async function actors(): Promise<HistoryActors> {
  const named = async (prefix: string, n: number) =>
    Promise.all(
      Array.from({ length: n }, async (_, k) =>
        actor(await generateKeyPairFromSeed('Ed25519', seedOf(`${prefix}${k}`))),
      ),
    );
  return {
    validators: await named('validator', VALIDATORS),
    miners: await named('miner', UIDS - VALIDATORS),
    users: await named('user', USERS),
  };
}

/** The production profile, shortened to one subnet with a cheap proof of work and funded bench keys. */
export function historyConfig(genesisMs: number, a: HistoryActors): NetworkConfig {
  const base = productionProfile(genesisMs);
  const subnet = base.subnets[0]!;
  const initialBalances: Record<string, string> = {};
  for (const v of a.validators) initialBalances[v.id] = (10_000n * TAO).toString();
  for (const m of a.miners) initialBalances[m.id] = (2n * TAO).toString();
  for (const u of a.users) initialBalances[u.id] = (1_000n * TAO).toString();
  return parseNetworkConfig({
    ...base,
    networkId: 'webtensor-bench-month',
    initialBalances,
    subnets: [{ ...subnet, registrationDifficulty: BENCH_DIFFICULTY }],
  });
}

/** Seeded PRNG (mulberry32). */
function random(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Validator k's weights over every UID in epoch e. */
export const weightsOf = (k: number, e: number): number[] =>
  Array.from({ length: UIDS }, (_, u) => 1000 + ((u * 7919 + k * 104729 + e * 31337) % 60000));

interface Spec {
  who: Actor;
  block: number;
  kind: RecordKind;
  body: unknown;
}

/** Sign specs in block order (stable), so every author's chain runs in block order. */
async function sign(config: NetworkConfig, specs: Spec[]): Promise<StoredRecord[]> {
  specs.sort((a, b) => a.block - b.block);
  return Promise.all(specs.map((s) => make(config, s.who, s.kind, s.block, s.body as Body<RecordKind>)));
}

/** The users' transfers and stake changes of epoch e (users' stakes tracked so unstakes are covered). */
function userOps(a: HistoryActors, e: number, tempo: number, staked: Map<string, bigint>): Spec[] {
  const rnd = random(e * 7 + 1);
  const specs: Spec[] = [];
  const blockIn = () => e * tempo + Math.floor(rnd() * tempo);
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
  for (let k = 0; k < TRANSFERS_PER_EPOCH; k++) {
    const from = pick(a.users);
    let to = pick(a.users);
    if (to === from) to = a.miners[k % a.miners.length]!;
    const amount = BigInt(1 + Math.floor(rnd() * 1_000_000_000)); // up to 1 τ
    specs.push({ who: from, block: blockIn(), kind: 'transfer', body: { to: to.id, amount: amount.toString() } });
  }
  for (let k = 0; k < STAKE_OPS_PER_EPOCH; k++) {
    const who = pick(a.users);
    const hotkey = pick(a.validators).id;
    const key = `${who.id}/${hotkey}`;
    const held = staked.get(key) ?? 0n;
    if (k % 2 === 1 && held > 0n) {
      const amount = held / 2n + 1n;
      staked.set(key, held - amount);
      specs.push({ who, block: blockIn(), kind: 'stake.remove', body: { hotkey, amount: amount.toString() } });
    } else {
      const amount = BigInt(1 + Math.floor(rnd() * 1_000_000_000));
      staked.set(key, held + amount);
      specs.push({ who, block: blockIn(), kind: 'stake.add', body: { hotkey, amount: amount.toString() } });
    }
  }
  return specs;
}

/**
 * The records of epoch e (1 ≤ e < epochs) apart from the votes: commits at its start, reveals of e-1's commits
 * when reveals open, the users' operations. Exported so the bench can make one more epoch after the history.
 */
export function epochSpecs(config: NetworkConfig, a: HistoryActors, e: number, staked: Map<string, bigint>): Spec[] {
  const tempo = config.subnets[0]!.tempo;
  const uids = Array.from({ length: UIDS }, (_, u) => u);
  const specs: Spec[] = [];
  for (const [k, v] of a.validators.entries())
    specs.push({
      who: v,
      block: e * tempo + 1,
      kind: 'weights.commit',
      body: { netuid: 1, hash: weightsCommitHash({ netuid: 1, uids, values: weightsOf(k, e), salt: SALT }) },
    });
  if (e >= 2)
    for (const [k, v] of a.validators.entries())
      specs.push({
        who: v,
        block: e * tempo + Math.ceil(tempo / 2) + 1,
        kind: 'weights.reveal',
        body: { netuid: 1, uids, values: weightsOf(k, e - 1), salt: SALT },
      });
  specs.push(...userOps(a, e, tempo, staked));
  return specs;
}

/** Every validator's vote on the checkpoint `link` names, dated at the end of the grace after its epoch. */
function voteSpecs(config: NetworkConfig, a: HistoryActors, link: ReplayBase['chain'][number]): Spec[] {
  const tempo = config.subnets[0]!.tempo;
  const { epoch, recordsRoot, stateRoot, previous } = link;
  return a.validators.map((v) => ({
    who: v,
    block: (epoch + 1) * tempo + config.graceBlocks + 1,
    kind: 'checkpoint',
    body: { epoch, recordsRoot, stateRoot, previous },
  }));
}

async function generate(days: number, file: string, log: (s: string) => void): Promise<History> {
  const started = performance.now();
  const a = await actors();
  const blockMs = productionProfile().blockMs;
  const tempo = productionProfile().subnets[0]!.tempo;
  const epochs = Math.round((days * 86_400_000) / blockMs / tempo);
  const genesisMs = Date.now() - (epochs * tempo + NOW_OFFSET) * blockMs;
  const config = historyConfig(genesisMs, a);
  const records: StoredRecord[] = [];
  // Epoch 0: every UID registers (one a block: the production limit), validators first; validators stake.
  for (const [k, who] of [...a.validators, ...a.miners].entries())
    records.push(await registration(config, who, 1 + k, k < VALIDATORS ? 'validator' : 'miner'));
  for (const [k, v] of a.validators.entries())
    records.push(
      await make(config, v, 'stake.add', 300, { hotkey: v.id, amount: ((5_000n + BigInt(k)) * TAO).toString() }),
    );
  let epochRecords = records.slice();
  let base: ReplayBase | undefined;
  const staked = new Map<string, bigint>();
  let replayMs = 0;
  for (let e = 1; e <= epochs; e++) {
    // Close e-1 from the state at e-2's close: its checkpoint, which the validators vote on at e's grace end.
    const t = performance.now();
    const r = replay(config, epochRecords, e * tempo, base);
    replayMs += performance.now() - t;
    const refused = Object.entries(r.refused);
    if (refused.length > 0)
      throw new Error(`epoch ${e - 1}: ${refused.length} refused, e.g. ${JSON.stringify(refused[0])}`);
    if (e >= 3 && r.lastVotedFinal !== e - 2)
      throw new Error(`epoch ${e - 2} is not final by votes (${r.lastVotedFinal})`);
    const link = r.chain.at(-1)!;
    base = { epoch: e - 1, stateText: r.recentStates.get(e - 1)!, chain: r.chain };
    const specs = e < epochs ? epochSpecs(config, a, e, staked) : [];
    // Epoch 0 has no voters (nobody held a permit): votes start with epoch 1.
    if (e >= 2) specs.push(...voteSpecs(config, a, link));
    epochRecords = await sign(config, specs);
    records.push(...epochRecords);
    if (e % 20 === 0 || e === epochs)
      log(
        `history: ${e}/${epochs} epochs, ${records.length} records, ${((performance.now() - started) / 1000).toFixed(0)} s (replay ${(replayMs / 1000).toFixed(0)} s)`,
      );
  }
  const generationMs = performance.now() - started;
  const generatedAt = new Date().toISOString();
  mkdirSync('.bench', { recursive: true });
  const header = { format: 2, days, epochs, genesisMs, generatedAt, generationMs };
  const text = [JSON.stringify(header), ...records.map((x) => JSON.stringify(x.record))].join('\n') + '\n';
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
  return { config, epochs, days, records, actors: a, generationMs, generatedAt, cached: false, file };
}

interface Header {
  format: number;
  days: number;
  epochs: number;
  genesisMs: number;
  generatedAt: string;
  generationMs: number;
}

async function load(file: string): Promise<History | null> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let header = null as Header | null;
  const records: StoredRecord[] = [];
  const { recordId } = await import('../shared/ledger/records.ts');
  for await (const line of lines) {
    if (!line) continue;
    if (!header) {
      header = JSON.parse(line) as Header;
      continue;
    }
    const record = JSON.parse(line) as LedgerRecord;
    records.push({ id: recordId(record), record });
  }
  if (!header || header.format !== 2) return null;
  const a = await actors();
  // Each actor's chain continues after its last record (the bench signs one more epoch).
  const seqs = new Map<string, number>();
  for (const { record } of records) seqs.set(record.author, Math.max(seqs.get(record.author) ?? 0, record.seq));
  for (const x of [...a.validators, ...a.miners, ...a.users]) x.seq = seqs.get(x.id) ?? 0;
  return {
    config: historyConfig(header.genesisMs, a),
    epochs: header.epochs,
    days: header.days,
    records,
    actors: a,
    generationMs: header.generationMs,
    generatedAt: header.generatedAt,
    cached: true,
    file,
  };
}

/** The history of `days` days, from the cache when it is fresh enough, else generated (and cached). */
export async function monthHistory(days: number, log: (s: string) => void = console.log): Promise<History> {
  const file = `.bench/ledger-history-${days}d.jsonl`;
  const maxAgeH = Number(process.env['BENCH_HISTORY_MAX_AGE_H'] ?? 6);
  if (existsSync(file) && Date.now() - statSync(file).mtimeMs < maxAgeH * 3_600_000) {
    const t = performance.now();
    const h = await load(file);
    if (h) {
      log(`history: read ${h.records.length} records from ${file} in ${(performance.now() - t).toFixed(0)} ms`);
      return h;
    }
  }
  log(`history: generating ${days} days into ${file}`);
  return generate(days, file, log);
}

/** The users' stake per (user, hotkey) at the end of a history, for signing more epochs after it. */
export function stakedOf(records: readonly StoredRecord[]): Map<string, bigint> {
  const staked = new Map<string, bigint>();
  for (const { record } of records) {
    if (record.kind !== 'stake.add' && record.kind !== 'stake.remove') continue;
    const key = `${record.author}/${record.body.hotkey}`;
    const d = BigInt(record.body.amount);
    staked.set(key, (staked.get(key) ?? 0n) + (record.kind === 'stake.add' ? d : -d));
  }
  return staked;
}

/** Sign `specs` (epoch e's records after the history) for the bench's "one more epoch". */
export const signSpecs = sign;
