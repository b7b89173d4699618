/**
 * How the ledger state is written down and hashed (the stateRoot's body).
 *
 * The state is a sorted list of entries, one line each: `path<TAB>canonical JSON`. Maps that grow with the
 * network (balances, stakes, chain heads, frozen authors, weight commits) have one entry per key; each checkpoint
 * tally is an entry; each open batch job is an entry; each subnet field is an entry; the ledger's counters are one. The text a joining node
 * downloads is these lines; the body hash commits to them through per-entry hashes in 256 buckets:
 *
 *   leaf   = sha256(line)
 *   bucket = sha256(leaf hashes of the entries whose sha256(path) starts with that byte, in path order)
 *   body   = sha256("webtensor/state-body/1\n" + the 256 bucket hashes)
 *
 * A StateDigest remembers each entry's line and hashes between closes, so a close hashes only the entries that
 * changed and the buckets they fall in (THREATS.md finding 5: a month of accounts must not make every close
 * rehash all of them). Writing the lines is still one pass over the state; hashing is what it saves.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { isJobId, jobFromJson } from './jobs.ts';
import type { CheckpointTally, LedgerState, SubnetState } from './state.ts';

const encoder = new TextEncoder();
const sha256Hex = (text: string) => bytesToHex(sha256(encoder.encode(text)));

/**
 * Canonical JSON (keys sorted by UTF-16 code units, as RFC 8785), bigints as decimal strings, undefined object
 * members left out as JSON.stringify does. Arrays of plain numbers (weights, bonds) take JSON.stringify's path.
 */
export function canonicalJson(v: unknown): string {
  if (typeof v === 'bigint') return `"${v.toString()}"`;
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'number')) return JSON.stringify(v);
    return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  }
  const o = v as Record<string, unknown>;
  const parts: string[] = [];
  for (const k of Object.keys(o).sort())
    if (o[k] !== undefined) parts.push(`${JSON.stringify(k)}:${canonicalJson(o[k])}`);
  return `{${parts.join(',')}}`;
}

/** Keys that may appear in a path: base58 peer ids (accounts, hotkeys and authors are nothing else). */
const KEY = /^[1-9A-HJ-NP-Za-km-z]{1,128}$/;
const key = (k: string): string => {
  if (!KEY.test(k)) throw new Error(`a state key may not be written into a path: ${JSON.stringify(k)}`);
  return k;
};
const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** Subnet fields written one entry each (commits are written per hotkey, the scalars together as `meta`). */
const SUBNET_FIELDS = ['uids', 'weights', 'permits', 'bonds', 'lastEmission'] as const;
const SUBNET_META = ['netuid', 'epoch', 'burn', 'difficulty', 'registrationsThisEpoch', 'lastRegistration'] as const;
const LEDGER_META = ['lastFinal', 'lastVotedFinal', 'issued', 'dust', 'burned'] as const;
/**
 * Ledger counters written only when not zero, so that a ledger that never held a batch job writes the text (and
 * the roots) it wrote before jobs existed.
 */
const LEDGER_OPTIONAL = ['forfeited'] as const;
const MAPS = ['balances', 'stakes', 'chains', 'frozen'] as const;
const jobKey = (id: string): string => {
  if (!isJobId(id)) throw new Error(`a job id may not be written into a path: ${JSON.stringify(id)}`);
  return id;
};

/** Every entry of the state as [path, value], in path order. */
export function stateEntries(state: LedgerState): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const map of MAPS) for (const [k, v] of Object.entries(state[map])) out.push([`${map}/${key(k)}`, v]);
  for (const t of state.checkpoints) out.push([`checkpoints/${pad(t.epoch, 10)}`, t]);
  for (const [id, job] of Object.entries(state.jobs)) out.push([`jobs/${jobKey(id)}`, job]);
  const counters: Record<string, unknown> = Object.fromEntries(LEDGER_META.map((f) => [f, state[f]]));
  for (const f of LEDGER_OPTIONAL) if (state[f] !== 0n) counters[f] = state[f];
  out.push(['ledger', counters]);
  for (const sub of state.subnets) {
    const at = `subnets/${pad(sub.netuid, 5)}`;
    for (const [hotkey, list] of Object.entries(sub.commits)) out.push([`${at}/commits/${key(hotkey)}`, list]);
    out.push([`${at}/meta`, Object.fromEntries(SUBNET_META.map((f) => [f, sub[f]]))]);
    for (const f of SUBNET_FIELDS) out.push([`${at}/${f}`, sub[f]]);
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The state's text: what a joining node downloads and a checkpointed replay starts from. */
export function stateText(state: LedgerState): string {
  return stateEntries(state)
    .map(([path, v]) => `${path}\t${canonicalJson(v)}`)
    .join('\n');
}

interface Leaf {
  line: string;
  hash: string;
  bucket: number;
}

/** The body hash from leaves in path order (each with its bucket), reusing the bucket hashes of `clean` buckets. */
function bodyOf(leaves: readonly Leaf[], bucketHash: (b: number, hashes: string[]) => string): string {
  const buckets: string[][] = Array.from({ length: 256 }, () => []);
  for (const l of leaves) buckets[l.bucket]!.push(l.hash);
  return sha256Hex(`webtensor/state-body/1\n${buckets.map((h, b) => bucketHash(b, h)).join('\n')}`);
}

const bucketOf = (path: string) => sha256(encoder.encode(path))[0]!;
const hashBucket = (hashes: string[]) => sha256Hex(hashes.join('\n'));

/** The body hash of a state text (a joining node checks the text it downloaded against a verified checkpoint). */
export function bodyHashOfText(text: string): string {
  const leaves = text.split('\n').map((line) => ({
    line,
    hash: sha256Hex(line),
    bucket: bucketOf(line.slice(0, line.indexOf('\t'))),
  }));
  return bodyOf(leaves, (_b, hashes) => hashBucket(hashes));
}

/**
 * Writes and hashes states, remembering each entry's line and hash and each bucket's hash: a state that differs
 * from the last one in k entries costs k leaf hashes and at most k bucket hashes. The memo is a pure cache (what
 * it returns depends only on the state), so one digest may serve any sequence of states.
 */
export class StateDigest {
  private leaves = new Map<string, Leaf>();
  private buckets: { hashes: string; hash: string }[] = [];
  /** What the last digest hashed: entries written anew, and buckets (of 256) hashed anew. */
  rehashed = { entries: 0, buckets: 0 };

  digest(state: LedgerState): { text: string; bodyHash: string } {
    this.rehashed = { entries: 0, buckets: 0 };
    const entries = stateEntries(state);
    const next = new Map<string, Leaf>();
    const leaves: Leaf[] = [];
    for (const [path, v] of entries) {
      const line = `${path}\t${canonicalJson(v)}`;
      const old = this.leaves.get(path);
      let leaf = old;
      if (!old || old.line !== line) {
        leaf = { line, hash: sha256Hex(line), bucket: old?.bucket ?? bucketOf(path) };
        this.rehashed.entries++;
      }
      next.set(path, leaf!);
      leaves.push(leaf!);
    }
    this.leaves = next;
    const bodyHash = bodyOf(leaves, (b, hashes) => {
      const joined = hashes.join('\n');
      const known = this.buckets[b];
      if (known && known.hashes === joined) return known.hash;
      const hash = sha256Hex(joined);
      this.buckets[b] = { hashes: joined, hash };
      this.rehashed.buckets++;
      return hash;
    });
    return { text: leaves.map((l) => l.line).join('\n'), bodyHash };
  }
}

/**
 * The state back from its text. Call it only on text whose body hash a verified checkpoint names (its shape is
 * then exactly what an honest replay wrote); it still throws on anything out of shape rather than returning
 * nonsense, naming the line.
 */
export function stateFromText(text: string): LedgerState {
  const raw: Record<string, unknown> & { checkpoints: unknown[]; jobs: Record<string, unknown> } = {
    balances: {},
    stakes: {},
    chains: {},
    frozen: {},
    checkpoints: [],
    jobs: {},
  };
  const subnets = new Map<string, Record<string, unknown> & { commits: Record<string, unknown> }>();
  let previous = '';
  for (const [n, line] of text.split('\n').entries()) {
    const tab = line.indexOf('\t');
    const path = line.slice(0, tab);
    if (tab < 1 || path <= previous) throw new Error(`state line ${n + 1}: expected a path after the one before`);
    previous = path;
    let value: unknown;
    try {
      value = JSON.parse(line.slice(tab + 1));
    } catch {
      throw new Error(`state line ${n + 1} (${path}): its value is not JSON`);
    }
    const [head, a, b, c, ...rest] = path.split('/');
    if (rest.length > 0 || [a, c].some((k) => k !== undefined && !/^[0-9A-Za-z]+$/.test(k)))
      throw new Error(`state line ${n + 1}: unknown path ${path}`);
    if ((MAPS as readonly string[]).includes(head!) && a && !b) (raw[head!] as Record<string, unknown>)[a] = value;
    else if (head === 'checkpoints' && a && !b) raw.checkpoints.push(value);
    else if (head === 'jobs' && a && isJobId(a) && !b) raw.jobs[a] = jobFromJson(value, path);
    else if (head === 'ledger' && !a) Object.assign(raw, pick(value, [...LEDGER_META, ...LEDGER_OPTIONAL], path));
    else if (head === 'subnets' && a && b) {
      const sub = subnets.get(a) ?? { commits: {} };
      subnets.set(a, sub);
      if (b === 'commits' && c) sub.commits[c] = value;
      else if (b === 'meta' && !c) Object.assign(sub, pick(value, SUBNET_META, path));
      else if ((SUBNET_FIELDS as readonly string[]).includes(b) && !c) sub[b] = value;
      else throw new Error(`state line ${n + 1}: unknown path ${path}`);
    } else throw new Error(`state line ${n + 1}: unknown path ${path}`);
  }
  for (const f of LEDGER_META) if (!(f in raw)) throw new Error(`the state has no ${f}`);
  for (const [at, sub] of subnets)
    for (const f of [...SUBNET_META, ...SUBNET_FIELDS])
      if (!(f in sub)) throw new Error(`subnet ${at} of the state has no ${f}`);
  return typed(raw, [...subnets.values()]);
}

function pick(value: unknown, fields: readonly string[], path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error(`${path}: expected an object`);
  const o = value as Record<string, unknown>;
  for (const f of Object.keys(o)) if (!fields.includes(f)) throw new Error(`${path}: unknown field ${f}`);
  return o;
}

const big = (v: unknown): bigint => {
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new Error(`expected a decimal string, got ${String(v)}`);
  return BigInt(v);
};
const bigValues = (o: unknown): Record<string, bigint> =>
  Object.fromEntries(Object.entries(o as Record<string, unknown>).map(([k, v]) => [k, big(v)]));

/** Decimal strings back to bigints where the state holds bigints. */
function typed(raw: Record<string, unknown>, subnets: Record<string, unknown>[]): LedgerState {
  const tallies = raw.checkpoints as (Record<string, unknown> & { votes: object })[];
  return {
    ...(raw as unknown as LedgerState),
    balances: bigValues(raw.balances),
    stakes: Object.fromEntries(Object.entries(raw.stakes as object).map(([k, v]) => [k, bigValues(v)])),
    checkpoints: tallies.map((t) => ({
      ...(t as unknown as CheckpointTally),
      voters: bigValues(t.voters),
      permittedStake: big(t.permittedStake),
      agreeingStake: big(t.agreeingStake),
    })),
    subnets: subnets.map((s) => ({
      ...(s as unknown as SubnetState),
      lastEmission: (s.lastEmission as unknown[]).map(big),
      burn: big(s.burn),
    })),
    issued: big(raw.issued),
    dust: big(raw.dust),
    burned: big(raw.burned),
    forfeited: raw.forfeited === undefined ? 0n : big(raw.forfeited),
  };
}
