/**
 * onnxruntime-web in a Node process: the same WASM build a tab runs (not onnxruntime-node), one thread, its files
 * read from node_modules (never fetched), registered where transformers.js looks for a runtime. Shared by the
 * node's engine (inference.ts) and the scripts that compare Node with Chromium.
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import * as ort from 'onnxruntime-web';

export function registerOnnxruntimeWeb(): void {
  // Node 20's V8 compiled all 27 MB of ORT's WASM with its optimising compiler before the first session could run:
  // 60-80 s of CPU per process on this machine's two cores. Its baseline compiler (Liftoff) alone loads the tiny
  // Llama in 4-6 s and ran 32-token requests no slower (median 19-22 ms against 70 ms while the optimising
  // compiles went on). WASM arithmetic is the same in both compilers, so tokens stay bit-identical to a tab's.
  setFlagsFromString('--liftoff-only');
  const dist = new URL('../../node_modules/onnxruntime-web/dist/', import.meta.url);
  ort.env.wasm.wasmBinary = readFileSync(new URL('ort-wasm-simd-threaded.asyncify.wasm', dist));
  ort.env.wasm.wasmPaths = { mjs: new URL('ort-wasm-simd-threaded.asyncify.mjs', dist).href };
  ort.env.wasm.numThreads = 1;
  // transformers.js takes the runtime registered here instead of loading onnxruntime-node.
  (globalThis as Record<symbol, unknown>)[Symbol.for('onnxruntime')] = ort;
}
