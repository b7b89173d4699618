/**
 * The LedgerStore contract, run against the memory store and the SQLite store alike with real signed records;
 * then what only the SQLite store promises: rows outlive the process (closed and reopened, or killed with
 * SIGKILL in the middle of writing), a put is all or nothing, and the schema version is checked.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NodeError } from '../../shared/errors.ts';
import type { StoredRecordRow } from '../../shared/ledger/db.ts';
import type { JoinedBase } from '../../shared/ledger/join.ts';
import { recordId } from '../../shared/ledger/records.ts';
import { actor, claim, make, registration, smallConfig, type Actor } from '../../shared/ledger/testing.ts';
import { MemoryLedgerStore } from '../memory-ledger-store.ts';
import type { LedgerStore } from '../platform.ts';
import { rowOf } from '../testing/fakes.ts';
import { LEDGER_SCHEMA_VERSION, SqliteLedgerStore } from './sqlite-ledger-store.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const config = smallConfig();
const tempDir = () => mkdtempSync(join(tmpdir(), 'sqlite-ledger-'));

const byId = (rows: readonly (StoredRecordRow | undefined)[]) =>
  [...rows].sort((a, b) => (a!.id < b!.id ? -1 : a!.id > b!.id ? 1 : 0));
const ids = (rows: readonly (StoredRecordRow | undefined)[]) => rows.map((r) => r?.id);

let alice: Actor;
let bob: Actor;
/** Five rows of several kinds, in arrival order: alice's a0..a2, bob's b0..b1 (interleaved). */
let rows: StoredRecordRow[];
/** A joined checkpoint at the close of epoch 0, its shape as join.ts makes it. */
let joined: JoinedBase;

beforeAll(async () => {
  alice = await actor();
  bob = await actor();
  const records = [
    await registration(config, alice, 1, 'miner'),
    await claim(config, bob, 2, 1_000_000_000n),
    await make(config, alice, 'weights.set', 3, { netuid: 1, uids: [0, 1], values: [65535, 1] }),
    await make(config, bob, 'transfer', 4, { to: alice.id, amount: '123456789012345678901234567890' }),
    await make(config, alice, 'checkpoint', 5, {
      epoch: 0,
      recordsRoot: 'a'.repeat(64),
      stateRoot: 'b'.repeat(64),
      previous: 'c'.repeat(64),
    }),
  ];
  rows = records.map((r, i) => rowOf(r, i % 2 ? `gossip:${bob.id}` : 'self', 1_700_000_000_000 + i));
  const link = { epoch: 0, recordsRoot: 'a'.repeat(64), stateRoot: 'b'.repeat(64), previous: 'c'.repeat(64) };
  joined = {
    epoch: 0,
    stateText: '{"balances":{},"issued":"18446744073709551616"}',
    chain: [{ ...link, bodyHash: 'd'.repeat(64), nextVoters: { [alice.id]: '18446744073709551616' } }],
    votes: [records[4]!.record],
    prefix: [records[0]!.record, records[1]!.record],
    from: bob.id,
    at: 1_700_000_000_123,
  };
});

const opened: SqliteLedgerStore[] = [];
afterEach(() => {
  for (const store of opened.splice(0)) store.close();
});

function openSqlite(file = join(tempDir(), 'ledger.sqlite')): SqliteLedgerStore {
  const store = SqliteLedgerStore.open(file);
  opened.push(store);
  return store;
}

const stores: { name: string; make: () => LedgerStore }[] = [
  { name: 'MemoryLedgerStore', make: () => new MemoryLedgerStore() },
  { name: 'SqliteLedgerStore', make: () => openSqlite() },
];

describe.each(stores)('LedgerStore contract: $name', ({ make: newStore }) => {
  it('holds nothing at first', async () => {
    const store = newStore();
    expect(await store.count()).toBe(0);
    expect(await store.all()).toEqual([]);
    expect(await store.byAuthor(alice.id)).toEqual([]);
    expect(await store.recent(10)).toEqual([]);
    expect(await store.get([rows[0]!.id])).toEqual([undefined]);
  });

  it('gives rows back exactly as stored, so their ids still verify', async () => {
    const store = newStore();
    await store.put(rows);
    expect(await store.count()).toBe(rows.length);
    const back = await store.get(rows.map((r) => r.id));
    expect(back).toEqual(rows);
    for (const row of back) expect(recordId(row!.record)).toBe(row!.id);
  });

  it('answers get in the order asked, undefined where not held', async () => {
    const store = newStore();
    const [a, b, c] = rows;
    await store.put([a!, b!, c!]);
    expect(await store.get([c!.id, 'f'.repeat(64), a!.id, c!.id])).toEqual([c, undefined, a, c]);
    expect(await store.get([])).toEqual([]);
  });

  it('keeps a row it already holds as it is, in its place by arrival', async () => {
    const store = newStore();
    const [a, b] = rows;
    await store.put([a!]);
    await store.put([b!]);
    await store.put([{ ...a!, source: 'sync:someone', receivedAt: a!.receivedAt + 1000 }]);
    expect(await store.count()).toBe(2);
    expect(await store.get([a!.id])).toEqual([a]);
    expect(ids(await store.recent(10))).toEqual([b!.id, a!.id]);
  });

  it('stores a row given twice in one put once, as first given', async () => {
    const store = newStore();
    const a = rows[0]!;
    await store.put([a, { ...a, source: 'sync:someone' }]);
    expect(await store.count()).toBe(1);
    expect(await store.get([a.id])).toEqual([a]);
  });

  it('lists the block and id of the rows from a block on, ordered by block then id', async () => {
    const store = newStore();
    // Two more rows in block 3, so ids decide the order within a block.
    const more = [
      await make(config, bob, 'transfer', 3, { to: alice.id, amount: '1' }),
      await make(config, bob, 'transfer', 3, { to: alice.id, amount: '2' }),
    ].map((r) => rowOf(r));
    await store.put([...rows, ...more].reverse());
    const expected = (from: number) =>
      [...rows, ...more]
        .filter((r) => r.block >= from)
        .map((r) => ({ block: r.block, id: r.id }))
        .sort((a, b) => a.block - b.block || (a.id < b.id ? -1 : 1));
    expect(await store.keysFrom(0)).toEqual(expected(0));
    expect(await store.keysFrom(3)).toEqual(expected(3));
    expect((await store.keysFrom(3)).filter((k) => k.block === 3)).toHaveLength(3);
    expect(await store.keysFrom(6)).toEqual([]);
  });

  it('lists every row, and each author’s own', async () => {
    const store = newStore();
    await store.put(rows);
    expect(byId(await store.all())).toEqual(byId(rows));
    expect(byId(await store.byAuthor(alice.id))).toEqual(byId(rows.filter((r) => r.author === alice.id)));
    expect(byId(await store.byAuthor(bob.id))).toEqual(byId(rows.filter((r) => r.author === bob.id)));
    expect(await store.byAuthor('12D3KooWnobody')).toEqual([]);
  });

  it('lists the newest rows by arrival, newest first, up to the limit', async () => {
    const store = newStore();
    const [a, b, c, d, e] = rows;
    await store.put([a!]);
    await store.put([b!, c!]);
    await store.put([d!]);
    expect(ids(await store.recent(2))).toEqual([d!.id, c!.id]);
    expect(ids(await store.recent(10))).toEqual([d!.id, c!.id, b!.id, a!.id]);
    await store.put([e!]);
    expect(ids(await store.recent(1))).toEqual([e!.id]);
  });

  it('deletes only the rows named, ignores ids it does not hold; a row stored again is the newest', async () => {
    const store = newStore();
    const [a, b, c] = rows;
    await store.put([a!, b!, c!]);
    await store.delete([a!.id, 'f'.repeat(64)]);
    await store.delete([]);
    expect(await store.count()).toBe(2);
    expect(await store.get([a!.id, b!.id])).toEqual([undefined, b]);
    expect(byId(await store.byAuthor(alice.id))).toEqual([c]);
    await store.put([a!]);
    expect(ids(await store.recent(10))).toEqual([a!.id, c!.id, b!.id]);
  });

  it('holds no base at first; keeps the base set, and drops the rows before the block named with it', async () => {
    const store = newStore();
    expect(await store.base()).toBeNull();
    await store.put(rows); // blocks 1..5
    await store.setBase(joined, 3);
    expect(await store.base()).toEqual(joined);
    expect(ids(await store.all())).toEqual(ids(rows.slice(2)));

    const later = { ...joined, epoch: 1, from: alice.id };
    await store.setBase(later, 0);
    expect(await store.base()).toEqual(later);
    expect(await store.count()).toBe(3);
  });
});

describe('SqliteLedgerStore', () => {
  it('keeps rows, arrival order and "held rows stay as they are" across close and reopen', async () => {
    const file = join(tempDir(), 'ledger.sqlite');
    const first = SqliteLedgerStore.open(file);
    await first.put(rows.slice(0, 3));
    first.close();

    const store = openSqlite(file);
    expect(await store.get(rows.map((r) => r.id))).toEqual([...rows.slice(0, 3), undefined, undefined]);
    await store.put([{ ...rows[0]!, source: 'sync:someone' }, ...rows.slice(3)]);
    expect(await store.get([rows[0]!.id])).toEqual([rows[0]]);
    expect(ids(await store.recent(10))).toEqual(ids([...rows].reverse()));
    expect(await store.all()).toEqual(rows);
  });

  it('keeps the base across close and reopen', async () => {
    const file = join(tempDir(), 'ledger.sqlite');
    const first = SqliteLedgerStore.open(file);
    await first.setBase(joined, 0);
    first.close();
    expect(await openSqlite(file).base()).toEqual(joined);
  });

  it('creates its folder, writes ahead with full sync and records its schema version', async () => {
    const file = join(tempDir(), 'a', 'b', 'ledger.sqlite');
    const store = SqliteLedgerStore.open(file);
    expect(store.path).toBe(file);
    // Private, but this is what makes a put durable: look at it.
    expect(store['db'].pragma('synchronous', { simple: true })).toBe(2); // FULL
    store.close();

    const raw = new Database(file, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(raw.pragma('user_version', { simple: true })).toBe(LEDGER_SCHEMA_VERSION);
    raw.close();
  });

  it('refuses a ledger written by a newer version, naming the file and both versions', async () => {
    const file = join(tempDir(), 'ledger.sqlite');
    SqliteLedgerStore.open(file).close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${LEDGER_SCHEMA_VERSION + 1}`);
    raw.close();

    const err = (() => {
      try {
        SqliteLedgerStore.open(file);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(NodeError);
    expect(err).toMatchObject({ code: 'storage' });
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toContain(`schema version ${LEDGER_SCHEMA_VERSION + 1}`);
    expect((err as Error).message).toContain(`up to version ${LEDGER_SCHEMA_VERSION}`);
  });

  it('refuses a file that is not a database, naming it', () => {
    const file = join(tempDir(), 'ledger.sqlite');
    writeFileSync(file, 'not a database, just some text that is long enough to have a header\n'.repeat(20));
    expect(() => SqliteLedgerStore.open(file)).toThrow(NodeError);
    expect(() => SqliteLedgerStore.open(file)).toThrow(file);
  });

  it('stores all of a put or none of it', async () => {
    const store = openSqlite();
    await store.put([rows[0]!]);
    const broken = { ...rows[2]!, network: null } as unknown as StoredRecordRow;
    await expect(store.put([rows[1]!, broken])).rejects.toMatchObject({ code: 'storage' });
    expect(ids(await store.all())).toEqual([rows[0]!.id]);
  });

  it('holds every acknowledged row after the writing process is killed with SIGKILL', async () => {
    const file = join(tempDir(), 'ledger.sqlite');
    const acknowledged = await writeUntilKilled(file, 300 + Math.floor(Math.random() * 200));

    // The file as the killed process left it (with its write-ahead log): intact, and it recovers.
    const raw = new Database(file);
    expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
    raw.close();

    const store = openSqlite(file);
    const held = await store.get(acknowledged);
    expect(held.filter((r) => !r).length).toBe(0);
    for (const row of held) expect(recordId(row!.record)).toBe(row!.id);
    // Rows of a put that had not returned may be there too, but whole puts only (1 to 4 rows each).
    expect(await store.count()).toBeGreaterThanOrEqual(acknowledged.length);
    expect(await store.count()).toBeLessThanOrEqual(acknowledged.length + 4);
    const more = await claim(config, alice, 9, 1n);
    await store.put([rowOf(more, 'self')]);
    expect(ids(await store.recent(1))).toEqual([more.id]);
  });
});

/**
 * A child process that opens the store in `file` and puts signed records in a loop (1 to 4 rows a put), printing
 * each id once its put has resolved; killed with SIGKILL after `atLeast` ids. Returns the ids it printed.
 */
async function writeUntilKilled(file: string, atLeast: number): Promise<string[]> {
  const url = (path: string) => JSON.stringify(pathToFileURL(join(root, path)).href);
  const script = `
    const { SqliteLedgerStore } = await import(${url('core/nodejs/sqlite-ledger-store.ts')});
    const { actor, claim, smallConfig } = await import(${url('shared/ledger/testing.ts')});
    const store = SqliteLedgerStore.open(process.env.LEDGER_FILE);
    const config = smallConfig();
    const who = await actor();
    for (let i = 0; ; i++) {
      const batch = [];
      for (let k = 0; k <= i % 4; k++) {
        const { id, record } = await claim(config, who, i, 1n);
        const { network, block, author, kind } = record;
        batch.push({ id, network, block, author, kind, record, source: 'self', receivedAt: Date.now() });
      }
      await store.put(batch);
      process.stdout.write(batch.map((r) => r.id + '\\n').join(''));
    }`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    env: { ...process.env, LEDGER_FILE: file },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const acknowledged: string[] = [];
  let partial = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!; // a line not yet ended was not (fully) acknowledged
    acknowledged.push(...lines);
    if (acknowledged.length >= atLeast) child.kill('SIGKILL');
  });
  // 'close', not 'exit': ids still in the pipe when the process died were acknowledged too.
  const signal = await new Promise<NodeJS.Signals | null>((done) => child.on('close', (_code, s) => done(s)));
  expect(signal, `the writer ended by itself:\n${stderr}`).toBe('SIGKILL');
  return acknowledged;
}
