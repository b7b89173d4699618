/** Model files are checked against the catalogue before use; a mismatch is an error that names the file. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { catalogue, findServedModel, modelVersion } from './catalogue.ts';
import { checkModelFile, ModelFileError } from './verify.ts';

const modelsDir = resolve(
  process.env['WEBTENSOR_SHARED'] ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared'),
  'models',
);

describe('model catalogue and file checks', () => {
  for (const entry of catalogue.filter((m) => m.source === 'local')) {
    it(`every file of ${entry.id} in ../shared/models matches the catalogue`, async () => {
      for (const file of entry.files)
        await checkModelFile(entry, file, readFileSync(resolve(modelsDir, entry.id, file.path)));
    });
  }

  it('a changed byte is refused with an error that names the file', async () => {
    const entry = findServedModel('karpathy/stories260K')!;
    const file = entry.files.find((f) => f.path === 'onnx/model.onnx')!;
    const bytes = new Uint8Array(readFileSync(resolve(modelsDir, entry.id, file.path)));
    bytes[1000] = bytes[1000]! ^ 1;
    await expect(checkModelFile(entry, file, bytes)).rejects.toThrow(
      new ModelFileError(
        `${entry.id}/onnx/model.onnx does not match its catalogue hash: the file on the server is not the one this version expects.`,
      ),
    );
    await expect(checkModelFile(entry, file, bytes.subarray(1))).rejects.toThrow(
      /is 1218612 bytes, but the catalogue says 1218613/,
    );
  });

  it('model URLs change when any file hash changes', () => {
    const entry = findServedModel('karpathy/stories260K')!;
    const changed = { ...entry, files: entry.files.map((f, k) => (k === 0 ? { ...f, sha256: '0'.repeat(64) } : f)) };
    expect(modelVersion(changed)).not.toBe(modelVersion(entry));
  });
});
