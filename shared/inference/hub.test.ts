import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { checkHubFile, gitBlobSha1, hubTreeSchema } from './hub.ts';

const enc = (s: string) => new TextEncoder().encode(s);

describe('hub file checks', () => {
  it('computes git blob ids as git does', async () => {
    // `printf 'hello\n' | git hash-object --stdin`
    expect(await gitBlobSha1(enc('hello\n'))).toBe('ce013625030ba8dba906f756967f9e9ca394464a');
    expect(await gitBlobSha1(new Uint8Array())).toBe('e69de29bb2d1d6434b8b29ae775ad8c2e48c5391');
  });

  it('accepts the published bytes and names the file when they differ', async () => {
    const config = enc('{"model_type":"llama"}\n');
    const weights = new Uint8Array(1000).map((_, k) => k % 251);
    const tree = hubTreeSchema.parse([
      { type: 'file', path: 'config.json', size: config.byteLength, oid: await gitBlobSha1(config) },
      {
        type: 'file',
        path: 'onnx/model.onnx',
        size: 134,
        oid: 'a'.repeat(40),
        lfs: { oid: createHash('sha256').update(weights).digest('hex'), size: weights.byteLength },
      },
    ]);
    expect(await checkHubFile(tree, 'org/m', 'config.json', config)).toBeNull();
    expect(await checkHubFile(tree, 'org/m', 'onnx/model.onnx', weights)).toBeNull();
    const bad = weights.slice();
    bad[500] = bad[500]! ^ 1;
    expect(await checkHubFile(tree, 'org/m', 'onnx/model.onnx', bad)).toMatch(
      /org\/m\/onnx\/model\.onnx does not match the sha256/,
    );
    expect(await checkHubFile(tree, 'org/m', 'onnx/model.onnx', weights.slice(1))).toMatch(/999 bytes/);
    expect(await checkHubFile(tree, 'org/m', 'config.json', enc('{}'))).toMatch(
      /config\.json does not match the git hash/,
    );
    expect(await checkHubFile(tree, 'org/m', 'tokenizer.json', config)).toMatch(/not listed/);
  });

  it('refuses a malformed tree listing', () => {
    expect(hubTreeSchema.safeParse([{ type: 'file', path: 'x', size: -1, oid: 'zz' }]).success).toBe(false);
  });
});
