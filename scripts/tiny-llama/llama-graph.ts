/**
 * A Llama decoder as an ONNX graph with the input/output contract transformers.js expects of an Optimum
 * LlamaForCausalLM export: input_ids, attention_mask, position_ids and past_key_values.N.{key,value} in;
 * logits and present.N.{key,value} out. RMSNorm, rotary embeddings (rotate-half), causal + padding mask,
 * multi-head attention with a KV cache, SwiGLU MLP, and an LM head.
 */
import { GraphBuilder } from './onnx-builder.ts';

export interface LlamaConfig {
  vocabSize: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  maxPositions: number;
  ropeTheta: number;
  rmsEps: number;
}

/** Uniform random floats from a seeded generator (sfc32): the same seed gives the same bytes everywhere. */
export function seededUniform(seed: number): () => number {
  let a = 0x9e3779b9,
    b = 0x243f6a88,
    c = 0xb7e15162,
    d = seed >>> 0;
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296; // [0, 1)
  };
}

export function buildLlamaGraph(cfg: LlamaConfig, seed: number): Uint8Array {
  const g = new GraphBuilder();
  const headDim = cfg.hidden / cfg.heads;
  const half = headDim / 2;
  const rand = seededUniform(seed);
  // Uniform(-s, s) has standard deviation s / sqrt(3).
  const weights = (name: string, dims: number[], std: number) => {
    const data = new Float32Array(dims.reduce((x, y) => x * y, 1));
    const s = std * Math.sqrt(3);
    for (let i = 0; i < data.length; i++) data[i] = (rand() * 2 - 1) * s;
    return g.floatTensor(name, dims, data);
  };
  const ones = (name: string, n: number) => g.floatTensor(name, [n], new Float32Array(n).fill(1));

  // Rotary tables: angle(pos, i) = pos / theta^(2i / headDim), i < headDim / 2.
  const cos = new Float32Array(cfg.maxPositions * half);
  const sin = new Float32Array(cfg.maxPositions * half);
  for (let p = 0; p < cfg.maxPositions; p++)
    for (let i = 0; i < half; i++) {
      const angle = p / cfg.ropeTheta ** ((2 * i) / headDim);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }

  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const attentionMask = g.input('attention_mask', 'int64', ['batch_size', 'total_sequence_length']);
  const positionIds = g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);
  const past = Array.from({ length: cfg.layers }, (_, l) => ({
    key: g.input(`past_key_values.${l}.key`, 'float', ['batch_size', cfg.heads, 'past_sequence_length', headDim]),
    value: g.input(`past_key_values.${l}.value`, 'float', ['batch_size', cfg.heads, 'past_sequence_length', headDim]),
  }));

  // [B, 1, S, headDim/2] so they broadcast over heads.
  const ropeCos = g.one('Unsqueeze', [
    g.one('Gather', [g.floatTensor('rope.cos', [cfg.maxPositions, half], cos), positionIds], { axis: 0 }),
    g.int64([1]),
  ]);
  const ropeSin = g.one('Unsqueeze', [
    g.one('Gather', [g.floatTensor('rope.sin', [cfg.maxPositions, half], sin), positionIds], { axis: 0 }),
    g.int64([1]),
  ]);

  // Additive mask [B, 1, S, T]: query at absolute position T-S+i sees keys j <= T-S+i that are not padding.
  const seqLen = g.one('Gather', [g.one('Shape', [inputIds]), g.int64([1], true)], { axis: 0 });
  const totalLen = g.one('Gather', [g.one('Shape', [attentionMask]), g.int64([1], true)], { axis: 0 });
  const queryPos = g.one('Range', [g.one('Sub', [totalLen, seqLen]), totalLen, g.int64([1], true)]);
  const keyPos = g.one('Range', [g.int64([0], true), totalLen, g.int64([1], true)]);
  const causal = g.one('LessOrEqual', [keyPos, g.one('Unsqueeze', [queryPos, g.int64([1])])]);
  const notPadding = g.one('Unsqueeze', [g.one('Cast', [attentionMask], { to: 9 }), g.int64([1, 2])]);
  const maskBias = g.one('Where', [g.one('And', [causal, notPadding]), g.float(0), g.float(-1e9)]);

  const rmsNorm = (x: string, weight: string) => {
    const meanSquare = g.one('ReduceMean', [g.one('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    const inv = g.one('Reciprocal', [g.one('Sqrt', [g.one('Add', [meanSquare, g.float(cfg.rmsEps)])])]);
    return g.one('Mul', [g.one('Mul', [x, inv]), weight]);
  };
  // [B, S, heads*headDim] -> [B, heads, S, headDim]
  const splitHeads = (x: string) =>
    g.one('Transpose', [g.one('Reshape', [x, g.int64([0, 0, cfg.heads, headDim])])], { perm: [0, 2, 1, 3] });
  const rotate = (x: string) => {
    const [x1, x2] = g.op('Split', [x, g.int64([half, half])], { axis: -1 }, 2) as [string, string];
    const first = g.one('Sub', [g.one('Mul', [x1, ropeCos]), g.one('Mul', [x2, ropeSin])]);
    const second = g.one('Add', [g.one('Mul', [x2, ropeCos]), g.one('Mul', [x1, ropeSin])]);
    return g.one('Concat', [first, second], { axis: -1 });
  };
  const linear = (x: string, name: string, inDim: number, outDim: number) =>
    g.one('MatMul', [x, weights(`${name}.weight_T`, [inDim, outDim], 1 / Math.sqrt(inDim))]);

  const embed = weights('model.embed_tokens.weight', [cfg.vocabSize, cfg.hidden], 0.5);
  let x = g.one('Gather', [embed, inputIds], { axis: 0 });
  for (let l = 0; l < cfg.layers; l++) {
    const p = `model.layers.${l}`;
    const h = rmsNorm(x, ones(`${p}.input_layernorm.weight`, cfg.hidden));
    const q = rotate(splitHeads(linear(h, `${p}.self_attn.q_proj`, cfg.hidden, cfg.hidden)));
    const k = rotate(splitHeads(linear(h, `${p}.self_attn.k_proj`, cfg.hidden, cfg.hidden)));
    const v = splitHeads(linear(h, `${p}.self_attn.v_proj`, cfg.hidden, cfg.hidden));
    const keys = g.one('Concat', [past[l]!.key, k], { axis: 2 });
    const values = g.one('Concat', [past[l]!.value, v], { axis: 2 });
    g.output(`present.${l}.key`, keys, 'float', ['batch_size', cfg.heads, 'total_sequence_length', headDim]);
    g.output(`present.${l}.value`, values, 'float', ['batch_size', cfg.heads, 'total_sequence_length', headDim]);

    const scores = g.one('Mul', [
      g.one('MatMul', [q, g.one('Transpose', [keys], { perm: [0, 1, 3, 2] })]),
      g.float(1 / Math.sqrt(headDim)),
    ]);
    const probs = g.one('Softmax', [g.one('Add', [scores, maskBias])], { axis: -1 });
    const attended = g.one('Reshape', [
      g.one('Transpose', [g.one('MatMul', [probs, values])], { perm: [0, 2, 1, 3] }),
      g.int64([0, 0, -1]),
    ]);
    x = g.one('Add', [x, linear(attended, `${p}.self_attn.o_proj`, cfg.hidden, cfg.hidden)]);

    const h2 = rmsNorm(x, ones(`${p}.post_attention_layernorm.weight`, cfg.hidden));
    const gate = linear(h2, `${p}.mlp.gate_proj`, cfg.hidden, cfg.intermediate);
    const up = linear(h2, `${p}.mlp.up_proj`, cfg.hidden, cfg.intermediate);
    const swiglu = g.one('Mul', [g.one('Mul', [gate, g.one('Sigmoid', [gate])]), up]);
    x = g.one('Add', [x, linear(swiglu, `${p}.mlp.down_proj`, cfg.intermediate, cfg.hidden)]);
  }
  const final = rmsNorm(x, ones('model.norm.weight', cfg.hidden));
  // An untied LM head whose columns for <unk> and the byte-fallback tokens are scaled down: random weights would
  // otherwise pick raw bytes often and print mojibake. Tying it to the embeddings made every greedy run repeat
  // its last token.
  const head = new Float32Array(cfg.hidden * cfg.vocabSize);
  const s = Math.sqrt(3) / Math.sqrt(cfg.hidden);
  for (let i = 0; i < head.length; i++) {
    const token = i % cfg.vocabSize;
    head[i] = (rand() * 2 - 1) * s * (token === 0 || (token >= 3 && token < 3 + 256) ? 0.1 : 4);
  }
  const logits = g.one('MatMul', [final, g.floatTensor('lm_head.weight_T', [cfg.hidden, cfg.vocabSize], head)]);
  g.output('logits', logits, 'float', ['batch_size', 'sequence_length', cfg.vocabSize]);
  return g.encode('webtensor/scripts/tiny-llama', 17);
}
