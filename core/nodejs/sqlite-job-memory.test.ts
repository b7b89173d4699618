/**
 * The job memory of a headless node (sqlite-job-memory.ts): values kept by key survive closing and opening the file
 * again; a file that is not a database, or one of a newer schema, is refused with a sentence naming it when it is
 * first used (not when the store is made, so a node starts and its JobClient reports it).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { JOB_MEMORY_SCHEMA_VERSION, SqliteJobMemoryStore } from './sqlite-job-memory.ts';

const dir = () => mkdtempSync(join(tmpdir(), 'job-memory-'));

describe('SqliteJobMemoryStore', () => {
  it('keeps values by key across a close and an open', async () => {
    const path = join(dir(), 'sub', 'jobs-test.sqlite');
    const store = new SqliteJobMemoryStore(path);
    expect(await store.all()).toEqual([]);
    await store.put('b', '{"v":1}');
    await store.put('a', 'first');
    await store.put('a', 'second');
    await store.put('c', 'gone soon');
    await store.delete(['c', 'never kept']);
    store.close();
    const again = new SqliteJobMemoryStore(path);
    expect(await again.all()).toEqual([
      { key: 'a', value: 'second' },
      { key: 'b', value: '{"v":1}' },
    ]);
    again.close();
  });

  it('refuses a file that is not a database, and one of a newer schema, naming the file', async () => {
    const junk = join(dir(), 'jobs-junk.sqlite');
    writeFileSync(junk, 'this is not a database, whatever its name says '.repeat(40));
    const store = new SqliteJobMemoryStore(junk);
    await expect(store.all()).rejects.toThrow(
      new RegExp(`^Could not open ${junk}, where batch jobs are kept across restarts: .*Move the file away`),
    );
    await expect(store.put('a', 'b')).rejects.toMatchObject({ code: 'storage' });

    const newer = join(dir(), 'jobs-newer.sqlite');
    const db = new Database(newer);
    db.pragma(`user_version = ${JOB_MEMORY_SCHEMA_VERSION + 1}`);
    db.close();
    await expect(new SqliteJobMemoryStore(newer).all()).rejects.toThrow(
      `${newer} has schema version ${JOB_MEMORY_SCHEMA_VERSION + 1}, written by a newer webtensor`,
    );
  });
});
