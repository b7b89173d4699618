/**
 * Checking files downloaded from the Hugging Face hub against the hashes the hub publishes for them: its tree API
 * lists every file with its git blob id (sha1 of "blob <size>\0" + bytes) and, for LFS files, the sha256 of the
 * content. A file whose bytes do not hash to what the hub lists is refused, naming the file.
 */
import { z } from 'zod';

export const hubTreeSchema = z.array(
  z.object({
    type: z.string(),
    path: z.string(),
    size: z.number().int().nonnegative(),
    oid: z.string().regex(/^[0-9a-f]{40}$/),
    lfs: z.object({ oid: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() }).optional(),
  }),
);
export type HubTree = z.infer<typeof hubTreeSchema>;

const hex = (buf: ArrayBuffer) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');

/** The git blob id of `bytes`, as git and the hub compute it. */
export async function gitBlobSha1(bytes: Uint8Array): Promise<string> {
  const header = new TextEncoder().encode(`blob ${bytes.byteLength}\0`);
  const all = new Uint8Array(header.byteLength + bytes.byteLength);
  all.set(header);
  all.set(bytes, header.byteLength);
  return hex(await crypto.subtle.digest('SHA-1', all));
}

/** Null when `bytes` are the file the hub lists at `path`; otherwise a sentence naming the file. */
export async function checkHubFile(
  tree: HubTree,
  repo: string,
  path: string,
  bytes: Uint8Array,
): Promise<string | null> {
  const entry = tree.find((e) => e.type === 'file' && e.path === path);
  if (!entry) return `${repo}/${path} is not listed by the hub, so it cannot be checked; refusing it.`;
  if (entry.lfs) {
    if (bytes.byteLength !== entry.lfs.size)
      return `${repo}/${path} is ${bytes.byteLength} bytes, but the hub lists ${entry.lfs.size}: the download is not the published file.`;
    if (hex(await crypto.subtle.digest('SHA-256', bytes as BufferSource)) !== entry.lfs.oid)
      return `${repo}/${path} does not match the sha256 the hub publishes for it: the download is not the published file.`;
    return null;
  }
  if ((await gitBlobSha1(bytes)) !== entry.oid)
    return `${repo}/${path} does not match the git hash the hub publishes for it: the download is not the published file.`;
  return null;
}
