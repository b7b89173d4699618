/**
 * The generated model's own tokenizer: a Llama-style (SentencePiece-like) BPE with byte fallback, trained here on
 * a small built-in corpus and written as a Hugging Face tokenizer.json that transformers.js loads as-is.
 * Training is deterministic: pairs are ranked by count, ties broken by the pair's text.
 */
export const SPACE = '▁'; // SentencePiece's word-boundary marker; spaces become this before BPE
export const SPECIALS = ['<unk>', '<s>', '</s>'] as const;

/** The corpus the tokenizer learns its merges from; our own text, so the tokenizer is ours too. */
export const CORPUS = `
Once upon a time there was a small network that lived in browser tabs. Every tab was a node, and every node
could help. Some nodes were miners: they ran a little model and answered questions. Some nodes were validators:
they asked the miners questions, checked the answers against their own run, and wrote down who did good work.
At the end of each epoch the validators shared their weights, and consensus turned those weights into rewards.
The miners that answered quickly and correctly earned the most. The ones that lied earned nothing at all.
A girl named Mia opened a tab on her old laptop. Her tab loaded the model, found its peers through the relay,
and started to mine. She watched the tokens stream in, one by one, and smiled. Her brother Tom opened another
tab and asked the network to tell him a story about a cat, a dog and a bird who were friends.
The cat said hello to the dog. The dog said hello to the bird. They played in the park under the big tree,
and when the sun went down they went home, happy and tired. The end.
`;

export interface TrainedTokenizer {
  vocab: Map<string, number>;
  merges: [string, string][];
}

/** Normalise as the tokenizer will at run time: a leading marker, and every space replaced by it. */
function normalise(text: string): string {
  return SPACE + text.replace(/ /g, SPACE);
}

/** Learn `mergeCount` BPE merges over words (each starting with the marker) of the corpus. */
export function trainBpe(corpus: string, mergeCount: number): TrainedTokenizer {
  const text = corpus.replace(/\s+/g, ' ').trim();
  const words = new Map<string, number>();
  for (const w of normalise(text).split(new RegExp(`(?=${SPACE})`))) words.set(w, (words.get(w) ?? 0) + 1);

  const vocab = new Map<string, number>();
  for (const s of SPECIALS) vocab.set(s, vocab.size);
  for (let b = 0; b < 256; b++) vocab.set(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, vocab.size);
  const alphabet = [...new Set([...text, SPACE])].filter((c) => c !== ' ').sort();
  for (const c of alphabet) vocab.set(c, vocab.size);

  let splits = [...words].map(([w, count]) => ({ symbols: [...w], count }));
  const merges: [string, string][] = [];
  for (let m = 0; m < mergeCount; m++) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of splits)
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]}\u0000${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    let best: string | null = null;
    let bestCount = 1; // a pair seen once is not worth a token
    for (const [key, count] of pairs)
      if (count > bestCount || (count === bestCount && best !== null && key < best)) {
        best = key;
        bestCount = count;
      }
    if (best === null) break;
    const [a, b] = best.split('\u0000') as [string, string];
    merges.push([a, b]);
    if (!vocab.has(a + b)) vocab.set(a + b, vocab.size); // two merges can spell the same token
    splits = splits.map(({ symbols, count }) => {
      const out: string[] = [];
      for (let i = 0; i < symbols.length; i++)
        if (symbols[i] === a && symbols[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(symbols[i]!);
      return { symbols: out, count };
    });
  }
  return { vocab, merges };
}

/** tokenizer.json in the layout of Llama's converted SentencePiece tokenizers. */
export function tokenizerJson({ vocab, merges }: TrainedTokenizer): object {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

export const tokenizerConfig = {
  add_bos_token: true,
  add_eos_token: false,
  bos_token: '<s>',
  eos_token: '</s>',
  unk_token: '<unk>',
  pad_token: null,
  clean_up_tokenization_spaces: false,
  legacy: true,
  model_max_length: 256,
  tokenizer_class: 'LlamaTokenizer',
  sp_model_kwargs: {},
  padding_side: 'left',
};

export const specialTokensMap = { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' };
