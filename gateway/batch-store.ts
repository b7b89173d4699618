/**
 * How the gateway keeps its batches and files under its data directory (files.ts, batches.ts): one JSON file per
 * object, written whole or not at all (a temporary file, flushed to disk, then renamed over the old one), and read
 * back checked at the start: a file that is not what it should be is skipped with a sentence naming the file and what
 * is wrong, and the others load. Leftover temporary files of a write the gateway did not finish are removed.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { z } from 'zod';

const TEMPORARY = /\.tmp-[0-9a-f]{12}$/;

/** Write `data` to `path` whole: a reader (or a restart) sees the old contents or the new, never part of them. */
export async function writeWhole(path: string, data: string | Uint8Array): Promise<void> {
  const temporary = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  const handle = await open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}

/** The first problem zod found, as `where: what`. */
export function problemOf(error: z.ZodError): string {
  const issue = error.issues[0]!;
  return `${issue.path.map(String).join('.') || 'the value'}: ${issue.message}`;
}

/**
 * Every `<name>.json` in `dir` that parses and passes `schema` and `check` (which names what else is wrong, or
 * returns null), with the id its name gives; and a sentence for each one skipped. Removes leftover temporary files.
 */
export async function readKept<T>(
  dir: string,
  what: string,
  schema: z.ZodType<T>,
  check: (value: T, id: string) => Promise<string | null> | string | null,
): Promise<{ values: T[]; skipped: string[] }> {
  const values: T[] = [];
  const skipped: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    if (TEMPORARY.test(name)) {
      await rm(path, { force: true });
      continue;
    }
    if (!name.endsWith('.json')) continue;
    const skip = (why: string) => skipped.push(`${path} is not ${what} (${why}); skipped`);
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(path, 'utf8'));
    } catch (err) {
      skip(`not JSON: ${(err as Error).message}`);
      continue;
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      skip(problemOf(parsed.error));
      continue;
    }
    const problem = await check(parsed.data, name.slice(0, -'.json'.length));
    if (problem) skip(problem);
    else values.push(parsed.data);
  }
  return { values, skipped };
}
