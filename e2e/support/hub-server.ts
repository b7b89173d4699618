/**
 * A local HTTP server speaking the two Hugging Face hub endpoints the worker uses (the tree listing with
 * published hashes, and file downloads), for testing the hub download path on machines that cannot reach the
 * real hub. It serves the project's generated model files, listing their true hashes; `corrupt` makes it serve
 * one file altered (listed hashes unchanged), as a tampered mirror would.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { generatedModelsDir } from '../../scripts/model-dirs.ts';

const SOURCE = join(generatedModelsDir, 'webtensor/tiny-llama');
const FILES = [
  'config.json',
  'generation_config.json',
  'special_tokens_map.json',
  'tokenizer.json',
  'tokenizer_config.json',
];

function gitBlobSha1(bytes: Buffer) {
  return createHash('sha1').update(`blob ${bytes.byteLength}\0`).update(bytes).digest('hex');
}

export interface HubRepo {
  /** Name the weights file as transformers.js asks for it with this dtype. */
  weights: 'onnx/model.onnx' | 'onnx/model_quantized.onnx';
  corrupt?: string;
}

export async function startHubServer(
  port: number,
  repos: Record<string, HubRepo>,
): Promise<{ url: string; stop(): void }> {
  const contents = (repo: HubRepo) => {
    const files = new Map<string, Buffer>(FILES.map((f) => [f, readFileSync(join(SOURCE, f))]));
    files.set(repo.weights, readFileSync(join(SOURCE, 'onnx/model.onnx')));
    return files;
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Expose-Headers', 'content-length');
    for (const [name, repo] of Object.entries(repos)) {
      const files = contents(repo);
      if (url.pathname === `/api/models/${name}/tree/main`) {
        const tree = [...files].map(([path, bytes]) => ({
          type: 'file',
          path,
          size: bytes.byteLength,
          oid: gitBlobSha1(bytes),
          ...(path.endsWith('.onnx')
            ? { lfs: { oid: createHash('sha256').update(bytes).digest('hex'), size: bytes.byteLength } }
            : {}),
        }));
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(tree));
        return;
      }
      const prefix = `/${name}/resolve/main/`;
      if (url.pathname.startsWith(prefix)) {
        const path = decodeURIComponent(url.pathname.slice(prefix.length));
        let bytes = files.get(path);
        if (!bytes) {
          res.writeHead(404).end('Entry not found');
          return;
        }
        if (repo.corrupt === path) {
          bytes = Buffer.from(bytes);
          bytes[bytes.byteLength >> 1] = bytes[bytes.byteLength >> 1]! ^ 1;
        }
        res
          .writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': bytes.byteLength })
          .end(bytes);
        return;
      }
    }
    res.writeHead(404).end('Repository not found');
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}/`, stop: () => void server.close() };
}
