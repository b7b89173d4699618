/**
 * The ledger on disk for Node processes (headless nodes, an archive node): one SQLite file per network, holding
 * its records and the checkpoint it joined from, written through better-sqlite3. The write-ahead log with
 * `synchronous=FULL` makes every write durable before its promise resolves: the rows survive kill -9 and power
 * loss. Same semantics as the memory store: ids already held are kept as they are, and arrival order is insertion
 * order (`seq`, the table's rowid).
 *
 * better-sqlite3 is synchronous: each call blocks the event loop for its query (and a put for one fsync), which
 * is what a node process wants from its only writer, and far simpler than a worker.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { StoredRecordRow } from '../../shared/ledger/db.ts';
import type { JoinedBase } from '../../shared/ledger/join.ts';
import { NodeError } from '../../shared/errors.ts';
import type { LedgerStore } from '../platform.ts';

/**
 * Schema migrations; `PRAGMA user_version` is how many have run. Append a step to change the schema, never edit
 * one that has shipped.
 */
const MIGRATIONS: readonly string[] = [
  // 1: records and base. `record` is the signed record as JSON (records hold no bigints: amounts are decimal strings);
  // the other columns repeat what lookups need. `seq` is the rowid, so the table itself is in arrival order.
  `CREATE TABLE records (
     seq INTEGER PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     network TEXT NOT NULL,
     block INTEGER NOT NULL,
     author TEXT NOT NULL,
     kind TEXT NOT NULL,
     record TEXT NOT NULL,
     source TEXT NOT NULL,
     received_at REAL NOT NULL
   );
   CREATE INDEX records_by_author ON records (author, seq);
   -- The checkpoint this node joined from, as JSON (no bigints either: stakes in it are decimal strings).
   CREATE TABLE base (
     only INTEGER PRIMARY KEY CHECK (only = 1),
     base TEXT NOT NULL
   );`,
  // 2: sync reads (block, id) in order from a block on; the index holds both, so no row is read for it.
  `CREATE INDEX records_by_block ON records (block, id);`,
];

/** The schema version this code writes. */
export const LEDGER_SCHEMA_VERSION = MIGRATIONS.length;

interface RecordDbRow {
  id: string;
  network: string;
  block: number;
  author: string;
  kind: StoredRecordRow['kind'];
  record: string;
  source: string;
  received_at: number;
}

const COLUMNS = 'id, network, block, author, kind, record, source, received_at';

const fromDb = (r: RecordDbRow): StoredRecordRow => ({
  id: r.id,
  network: r.network,
  block: r.block,
  author: r.author,
  kind: r.kind,
  record: JSON.parse(r.record) as StoredRecordRow['record'],
  source: r.source,
  receivedAt: r.received_at,
});

/** The statements and transactions of one open database, prepared once. */
function prepare(db: Database.Database) {
  const get = db.prepare<[string], RecordDbRow>(`SELECT ${COLUMNS} FROM records WHERE id = ?`);
  // Only a uniqueness conflict on the id is ignored (INSERT OR IGNORE would also swallow NOT NULL failures).
  const insert = db.prepare<[Omit<RecordDbRow, 'received_at'> & { receivedAt: number }]>(
    `INSERT INTO records (${COLUMNS})
     VALUES (@id, @network, @block, @author, @kind, @record, @source, @receivedAt)
     ON CONFLICT (id) DO NOTHING`,
  );
  const remove = db.prepare<[string]>('DELETE FROM records WHERE id = ?');
  const keepBase = db.prepare<[string]>(
    'INSERT INTO base (only, base) VALUES (1, ?) ON CONFLICT (only) DO UPDATE SET base = excluded.base',
  );
  const removeBelow = db.prepare<[number]>('DELETE FROM records WHERE block < ?');
  return {
    count: db.prepare<[], number>('SELECT count(*) FROM records').pluck(),
    all: db.prepare<[], RecordDbRow>(`SELECT ${COLUMNS} FROM records ORDER BY seq`),
    keysFrom: db.prepare<[number], { block: number; id: string }>(
      'SELECT block, id FROM records WHERE block >= ? ORDER BY block, id',
    ),
    byAuthor: db.prepare<[string], RecordDbRow>(`SELECT ${COLUMNS} FROM records WHERE author = ? ORDER BY seq`),
    recent: db.prepare<[number], RecordDbRow>(`SELECT ${COLUMNS} FROM records ORDER BY seq DESC LIMIT ?`),
    // One read transaction, so the answer is one consistent view however many ids are asked for.
    getMany: db.transaction((ids: readonly string[]) => ids.map((id) => get.get(id))),
    // One transaction: all of the rows or none, and one fsync per call.
    putMany: db.transaction((rows: readonly StoredRecordRow[]) => {
      for (const r of rows)
        insert.run({
          id: r.id,
          network: r.network,
          block: r.block,
          author: r.author,
          kind: r.kind,
          record: JSON.stringify(r.record),
          source: r.source,
          receivedAt: r.receivedAt,
        });
    }),
    deleteMany: db.transaction((ids: readonly string[]) => {
      for (const id of ids) remove.run(id);
    }),
    base: db.prepare<[], string>('SELECT base FROM base').pluck(),
    // The base and the history it replaces change together, or not at all.
    setBase: db.transaction((base: JoinedBase, dropBelow: number) => {
      keepBase.run(JSON.stringify(base));
      removeBelow.run(dropBelow);
    }),
  };
}

export class SqliteLedgerStore implements LedgerStore {
  private readonly sql: ReturnType<typeof prepare>;

  private constructor(
    /** The database file. */
    readonly path: string,
    private readonly db: Database.Database,
  ) {
    this.sql = prepare(db);
  }

  /**
   * Open (or create) the store in `path`, creating its folder and bringing the schema up to date. Refuses a file
   * written by a newer version of webtensor, and a file that is not a SQLite database, saying which file.
   */
  static open(path: string): SqliteLedgerStore {
    const file = resolve(path);
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    let db: Database.Database | undefined;
    try {
      db = new Database(file);
      db.pragma('synchronous = FULL');
      migrate(db, file); // first: a file this code refuses is left as it was
      // WAL: a commit is one append to the log; FULL: that append is fsynced before the commit returns.
      if (db.pragma('journal_mode = WAL', { simple: true }) !== 'wal')
        throw new Error('this file system does not support SQLite write-ahead logging');
      return new SqliteLedgerStore(file, db);
    } catch (err) {
      db?.close();
      if (err instanceof NodeError) throw err;
      throw new NodeError('storage', `Could not open the ledger ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Close the database (the log is checkpointed into the file). The store cannot be used afterwards. */
  close(): void {
    this.db.close();
  }

  async count(): Promise<number> {
    return this.sql.count.get()!;
  }

  async get(ids: readonly string[]): Promise<(StoredRecordRow | undefined)[]> {
    return this.sql.getMany(ids).map((r) => (r ? fromDb(r) : undefined));
  }

  async put(rows: readonly StoredRecordRow[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      this.sql.putMany(rows);
    } catch (err) {
      throw new NodeError('storage', `Could not store records in ${this.path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async delete(ids: readonly string[]): Promise<void> {
    if (ids.length > 0) this.sql.deleteMany(ids);
  }

  async all(): Promise<StoredRecordRow[]> {
    return this.sql.all.all().map(fromDb);
  }

  async keysFrom(from: number): Promise<{ block: number; id: string }[]> {
    return this.sql.keysFrom.all(from);
  }

  async byAuthor(author: string): Promise<StoredRecordRow[]> {
    return this.sql.byAuthor.all(author).map(fromDb);
  }

  async recent(limit: number): Promise<StoredRecordRow[]> {
    // SQLite reads a negative LIMIT as "no limit"; asking for none gets none.
    if (!(limit > 0)) return [];
    return this.sql.recent.all(Math.floor(limit)).map(fromDb);
  }

  async base(): Promise<JoinedBase | null> {
    const text = this.sql.base.get();
    return text === undefined ? null : (JSON.parse(text) as JoinedBase);
  }

  async setBase(base: JoinedBase, dropBelow: number): Promise<void> {
    try {
      this.sql.setBase(base, dropBelow);
    } catch (err) {
      const message = `Could not store the joined checkpoint in ${this.path}: ${(err as Error).message}`;
      throw new NodeError('storage', message, { cause: err });
    }
  }
}

/** Run the migrations `file` has not had yet, in one transaction; refuse a schema newer than this code's. */
function migrate(db: Database.Database, file: string): void {
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > LEDGER_SCHEMA_VERSION)
      throw new NodeError(
        'storage',
        `The ledger ${file} has schema version ${version}, written by a newer webtensor; this one reads up to ` +
          `version ${LEDGER_SCHEMA_VERSION}. Update webtensor, or move the file away to start a new ledger.`,
      );
    for (let v = version; v < LEDGER_SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    // PRAGMA takes no parameters; the value is our own integer.
    db.pragma(`user_version = ${LEDGER_SCHEMA_VERSION}`);
  }).immediate();
}
