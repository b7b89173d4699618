/**
 * The generated default model: reproducible to the byte (its catalogue hashes), a tokenizer that round-trips any
 * text, and a graph that transformers.js runs in Node on onnxruntime-web's WASM, deterministically, with a KV
 * cache that agrees with a full forward pass.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { findServedModel } from '../../shared/inference/catalogue.ts';
import { checkModelFile } from '../../shared/inference/verify.ts';
import { greedy, nodeTextGenerator } from '../node-inference.ts';
import { sha256, TINY_LLAMA_ID, tinyLlamaFiles } from './generate.ts';
import { CORPUS, trainBpe } from './tokenizer.ts';

const files = tinyLlamaFiles();
const dir = mkdtempSync(join(tmpdir(), 'tiny-llama-'));
for (const [path, bytes] of files) {
  mkdirSync(dirname(join(dir, TINY_LLAMA_ID, path)), { recursive: true });
  writeFileSync(join(dir, TINY_LLAMA_ID, path), bytes);
}

describe('the generated tiny Llama', () => {
  it('is byte-for-byte the model the catalogue lists', async () => {
    const entry = findServedModel(TINY_LLAMA_ID)!;
    expect([...files.keys()].sort()).toEqual(entry.files.map((f) => f.path).sort());
    for (const file of entry.files) {
      const bytes = files.get(file.path)!;
      expect({ path: file.path, size: bytes.length, sha256: sha256(bytes) }).toEqual(file);
      await expect(checkModelFile(entry, file, bytes.slice().buffer)).resolves.toBeUndefined();
    }
  });

  it('trains the same tokenizer every time, with merges that all made it into the vocabulary', () => {
    const a = trainBpe(CORPUS, 160);
    const b = trainBpe(CORPUS, 160);
    expect(a.merges).toEqual(b.merges);
    // Training stops early once no pair occurs twice in the small corpus.
    expect(a.merges.length).toBeGreaterThan(100);
    expect(new Set(a.vocab.values()).size).toBe(a.vocab.size); // ids are unique
    for (const [x, y] of a.merges) expect(a.vocab.has(x + y)).toBe(true);
    expect(a.vocab.get('<s>')).toBe(1);
    expect(a.vocab.get('<0x00>')).toBe(3);
  });

  describe('in transformers.js on onnxruntime-web WASM', async () => {
    const gen = await nodeTextGenerator(TINY_LLAMA_ID, dir);

    it('round-trips text through its tokenizer, byte fallback included', () => {
      for (const text of ['Once upon a time, a cat.', 'naïve café — 東京 🐈', 'validators  check\tminers'])
        expect(gen.tokenizer.decode(gen.tokenizer.encode(text), { skip_special_tokens: true })).toBe(text);
      expect(gen.tokenizer.encode('the network').length).toBeLessThan('the network'.length);
    });

    it('generates the same token ids every run', async () => {
      const first = await greedy(gen, 'Once upon a time', 24);
      expect(first).toHaveLength(24);
      expect(await greedy(gen, 'Once upon a time', 24)).toEqual(first);
      expect(new Set(first).size).toBeGreaterThan(4); // not one token repeated
    });

    it('agrees with a full forward pass: the KV cache changes nothing', async () => {
      const prompt = 'The miners answered';
      const newIds = await greedy(gen, prompt, 12);
      const promptIds = gen.tokenizer.encode(prompt);
      const all = [...promptIds, ...newIds];
      const { Tensor } = await import('@huggingface/transformers');
      const ids = new Tensor('int64', BigInt64Array.from(all.map(BigInt)), [1, all.length]);
      const mask = new Tensor('int64', new BigInt64Array(all.length).fill(1n), [1, all.length]);
      const out = (await gen.model({ input_ids: ids, attention_mask: mask })) as {
        logits: { data: Float32Array; dims: number[] };
      };
      const vocab = out.logits.dims[2]!;
      const argmax = (row: number) => {
        let best = 0;
        for (let v = 1; v < vocab; v++)
          if (out.logits.data[row * vocab + v]! > out.logits.data[row * vocab + best]!) best = v;
        return best;
      };
      const predicted = newIds.map((_, i) => argmax(promptIds.length - 1 + i));
      expect(predicted).toEqual(newIds);
    });
  });
});
