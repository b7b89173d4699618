/** Checking model files against the catalogue. Pure: uses only Web Crypto, present in browsers and Node 20. */
import { InferenceError } from '../errors.ts';
import type { ModelEntry, ModelFile } from './catalogue.ts';

export async function sha256Hex(bytes: ArrayBuffer | Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class ModelFileError extends InferenceError {
  override name = 'ModelFileError';
  constructor(message: string) {
    super('model-file', message);
  }
}

/** Throws ModelFileError naming the file when its size or hash is not the catalogue's. */
export async function checkModelFile(
  entry: ModelEntry,
  file: ModelFile,
  bytes: ArrayBuffer | Uint8Array,
): Promise<void> {
  if (bytes.byteLength !== file.size)
    throw new ModelFileError(
      `${entry.id}/${file.path} is ${bytes.byteLength} bytes, but the catalogue says ${file.size}: the file on the server is not the one this version expects.`,
    );
  if ((await sha256Hex(bytes)) !== file.sha256)
    throw new ModelFileError(
      `${entry.id}/${file.path} does not match its catalogue hash: the file on the server is not the one this version expects.`,
    );
}
