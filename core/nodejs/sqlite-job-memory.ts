/**
 * What a headless node's batch-job services keep across restarts (core/services/job-memory.ts), in SQLite beside its
 * ledger: `<data>/jobs-<network>.sqlite`, one table of values by key, written through better-sqlite3 with the same
 * durability as the ledger (write-ahead log, `synchronous=FULL`: a write is on disk before its promise resolves).
 *
 * The database opens at the first call, not at construction: a file that cannot be opened (not a database, written by
 * a newer webtensor) rejects each call with a sentence naming the file, which the JobClient reports and works on
 * without it, rather than stopping the node.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { NodeError } from '../../shared/errors.ts';
import type { JobMemoryStore } from '../platform.ts';

/** Schema migrations; `PRAGMA user_version` is how many have run. Append a step, never edit one that shipped. */
const MIGRATIONS: readonly string[] = [
  // 1: the values, by key (a job's id), with when each was last written (ms since the epoch).
  `CREATE TABLE kept (
     key TEXT PRIMARY KEY,
     value TEXT NOT NULL,
     written_at REAL NOT NULL
   );`,
];

export const JOB_MEMORY_SCHEMA_VERSION = MIGRATIONS.length;

export class SqliteJobMemoryStore implements JobMemoryStore {
  /** The database file. */
  readonly path: string;
  private db: Database.Database | null = null;

  constructor(path: string) {
    this.path = resolve(path);
  }

  async all(): Promise<{ key: string; value: string }[]> {
    return this.open().prepare<[], { key: string; value: string }>('SELECT key, value FROM kept ORDER BY key').all();
  }

  async put(key: string, value: string): Promise<void> {
    const db = this.open();
    try {
      db.prepare<[string, string, number]>(
        `INSERT INTO kept (key, value, written_at) VALUES (?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, written_at = excluded.written_at`,
      ).run(key, value, Date.now());
    } catch (err) {
      throw new NodeError('storage', `Could not write ${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    const db = this.open();
    const remove = db.prepare<[string]>('DELETE FROM kept WHERE key = ?');
    db.transaction(() => {
      for (const key of keys) remove.run(key);
    })();
  }

  /** Close the database, if open (a later call opens it again). */
  close(): void {
    this.db?.close();
    this.db = null;
  }

  private open(): Database.Database {
    if (this.db) return this.db;
    const file = this.path;
    let db: Database.Database | undefined;
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      db = new Database(file);
      db.pragma('synchronous = FULL');
      migrate(db, file);
      if (db.pragma('journal_mode = WAL', { simple: true }) !== 'wal')
        throw new Error('this file system does not support SQLite write-ahead logging');
    } catch (err) {
      db?.close();
      if (err instanceof NodeError) throw err;
      throw new NodeError(
        'storage',
        `Could not open ${file}, where batch jobs are kept across restarts: ${(err as Error).message}. ` +
          'Move the file away to start it anew.',
        { cause: err },
      );
    }
    this.db = db;
    return db;
  }
}

/** Run the migrations `file` has not had yet, in one transaction; refuse a schema newer than this code's. */
function migrate(db: Database.Database, file: string): void {
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > JOB_MEMORY_SCHEMA_VERSION)
      throw new NodeError(
        'storage',
        `${file} has schema version ${version}, written by a newer webtensor; this one reads up to version ` +
          `${JOB_MEMORY_SCHEMA_VERSION}. Update webtensor, or move the file away to start it anew.`,
      );
    for (let v = version; v < JOB_MEMORY_SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${JOB_MEMORY_SCHEMA_VERSION}`);
  }).immediate();
}
