/**
 * The model catalogue: what a node can run, with every file's size and sha256 so a node can verify what it
 * loads. `local` models are served by our own server under /models/ (from ../shared/models beside the
 * repository); their bytes are never committed.
 */
export type Task = 'text-generation' | 'feature-extraction';

export interface ModelFile {
  path: string;
  sha256: string;
  size: number;
}

export interface ModelEntry {
  id: string;
  task: Task;
  licence: string;
  source: 'local' | 'hub';
  files: ModelFile[];
}

const tokenizerFiles: ModelFile[] = [
  {
    path: 'special_tokens_map.json',
    sha256: '96bdbb8504d9967606e5f661ccc7cbbac44a3661af863a7a58614670a0ccab33',
    size: 72,
  },
  { path: 'tokenizer.json', sha256: '95e3be553847046366fb0da05c4dcb0d83589d7eec3a36a7e092f09962358bd0', size: 8451 },
  {
    path: 'tokenizer_config.json',
    sha256: '4c89059861e058e584a3383706a0959ab23a4fc3251c0f987ff0971f9bb6eeb8',
    size: 320,
  },
];

export const catalogue: readonly ModelEntry[] = [
  {
    id: 'karpathy/stories260K',
    task: 'text-generation',
    licence: 'MIT (llama2.c / tinyllamas); trained on TinyStories',
    source: 'local',
    files: [
      { path: 'config.json', sha256: '9ccf5198bb43f0cc65362b66df73b55fdbc137674feb7a84c1265b89c8d5d99d', size: 552 },
      {
        path: 'generation_config.json',
        sha256: '9aee6c1a4b9d17c88cdc084337291a12693a889cd4b73311aff737796249cf41',
        size: 83,
      },
      {
        path: 'onnx/model.onnx',
        sha256: '6d3649e2b8961d6185df9586a2005d083dcecca129014593828940285d746627',
        size: 1218613,
      },
      ...tokenizerFiles,
    ],
  },
  {
    id: 'karpathy/stories260K-embed',
    task: 'feature-extraction',
    licence: 'MIT (llama2.c / tinyllamas); trained on TinyStories',
    source: 'local',
    files: [
      { path: 'config.json', sha256: '87731bc455342ad57117f730f44b8991e8a97f8a4e983e163d10cc72f6ad0d7a', size: 547 },
      {
        path: 'onnx/model.onnx',
        sha256: '5e19f64ae9c88da8d942793d8c551ff1ddcfa7d689eb985153d2bc8eed02bd21',
        size: 1085005,
      },
      ...tokenizerFiles,
    ],
  },
];

export function findModel(id: string): ModelEntry | undefined {
  return catalogue.find((m) => m.id === id);
}

/**
 * A short version for URLs, derived from every file hash of a model: transformers.js caches model files by URL
 * and never revalidates, so a changed file must change the URL.
 */
export function modelVersion(entry: ModelEntry): string {
  let h = 0x811c9dc5;
  for (const f of entry.files)
    for (const c of f.path + f.sha256) {
      h ^= c.charCodeAt(0);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  return h.toString(16).padStart(8, '0');
}

/** The base URL transformers.js uses as localModelPath for one model: /models/<version>/ */
export function modelBasePath(entry: ModelEntry): string {
  return `/models/${modelVersion(entry)}/`;
}
