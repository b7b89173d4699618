/**
 * Generate webtensor's own default model, `webtensor/tiny-llama`: a seeded random-weight Llama with its own BPE
 * tokenizer, in transformers.js layout, under generated/models/ (never committed). Run at install (postinstall)
 * so a fresh machine with no network has a model to mine with. The output is byte-for-byte reproducible; the
 * catalogue holds its hashes and the unit test checks that a regenerated model matches them.
 *
 *   tsx scripts/tiny-llama/generate.ts [outDir]
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generatedModelsDir } from '../model-dirs.ts';
import { buildLlamaGraph, type LlamaConfig } from './llama-graph.ts';
import { CORPUS, specialTokensMap, tokenizerConfig, tokenizerJson, trainBpe } from './tokenizer.ts';

export const TINY_LLAMA_ID = 'webtensor/tiny-llama';
const SEED = 20261122;
const MERGES = 160;

/** Every file of the model, by path, as bytes. */
export function tinyLlamaFiles(): Map<string, Uint8Array> {
  const tokenizer = trainBpe(CORPUS, MERGES);
  const cfg: LlamaConfig = {
    vocabSize: tokenizer.vocab.size,
    hidden: 64,
    intermediate: 176,
    layers: 2,
    heads: 4,
    maxPositions: 256,
    ropeTheta: 10000,
    rmsEps: 1e-5,
  };
  const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v, null, 2) + '\n');
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.hidden,
    intermediate_size: cfg.intermediate,
    num_hidden_layers: cfg.layers,
    num_attention_heads: cfg.heads,
    num_key_value_heads: cfg.heads,
    head_dim: cfg.hidden / cfg.heads,
    max_position_embeddings: cfg.maxPositions,
    rms_norm_eps: cfg.rmsEps,
    rope_theta: cfg.ropeTheta,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
    torch_dtype: 'float32',
    use_cache: true,
    'transformers.js_config': { dtype: 'fp32' },
    webtensor: { generator: 'scripts/tiny-llama', seed: SEED, merges: MERGES },
  };
  return new Map([
    ['config.json', json(config)],
    ['generation_config.json', json({ bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 })],
    ['special_tokens_map.json', json(specialTokensMap)],
    ['tokenizer.json', json(tokenizerJson(tokenizer))],
    ['tokenizer_config.json', json(tokenizerConfig)],
    ['onnx/model.onnx', buildLlamaGraph(cfg, SEED)],
  ]);
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function main() {
  const out = join(resolve(process.argv[2] ?? generatedModelsDir), TINY_LLAMA_ID);
  for (const [path, bytes] of tinyLlamaFiles()) {
    mkdirSync(dirname(join(out, path)), { recursive: true });
    writeFileSync(join(out, path), bytes);
    console.log(`${path}\t${bytes.length}\t${sha256(bytes)}`);
  }
  console.log(`wrote ${TINY_LLAMA_ID} to ${out}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
