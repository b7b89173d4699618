/**
 * The Node inference engine on real models from disk: stories260K gives the same known greedy story a tab gives
 * (e2e/inference.spec.ts checks the tab), the generated tiny Llama runs, a changed byte in a model file is refused
 * with the file's name, and hub models, a second concurrent generation and bad parameters are refused in sentences.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultModelDirs, NodeInferenceEngine } from './inference.ts';

const dirs = defaultModelDirs();

describe('NodeInferenceEngine', () => {
  const engine = new NodeInferenceEngine(dirs);
  beforeAll(() => engine.load('karpathy/stories260K'), 60_000);

  it('lists the models on this machine, best first', () => {
    expect(engine.available()).toEqual(['karpathy/stories260K', 'webtensor/tiny-llama']);
  });

  it("gives stories260K's known greedy story, as a tab does, and the same ids every time", async () => {
    const a = await engine.generate({ prompt: 'Once upon a time', maxNewTokens: 32 });
    expect(a.text).toContain('there was a little girl named Lily');
    expect(a.tokenIds).toHaveLength(32);
    expect(a.finish).toBe('length');
    const pieces: string[] = [];
    const b = await engine.generate({ prompt: 'Once upon a time', maxNewTokens: 32 }, (t) => pieces.push(t));
    expect(b.tokenIds).toEqual(a.tokenIds);
    expect(pieces.join('')).toBe(b.text);
  });

  it('samples reproducibly with a seed, stops at a stop string, refuses a second generation and bad lengths', async () => {
    const sampling = { seed: 7, temperature: 0.8, topK: 20 };
    const x = await engine.generate({ prompt: 'Once', maxNewTokens: 16, sampling });
    const y = await engine.generate({ prompt: 'Once', maxNewTokens: 16, sampling });
    expect(y.tokenIds).toEqual(x.tokenIds);
    const stopped = await engine.generate({ prompt: 'Once upon a time', maxNewTokens: 32, stop: ['Lily'] });
    expect(stopped).toMatchObject({ finish: 'stop' });
    expect(stopped.text).not.toContain('Lily');
    const running = engine.generate({ prompt: 'Once', maxNewTokens: 64 });
    await expect(engine.generate({ prompt: 'Once', maxNewTokens: 4 })).rejects.toMatchObject({ code: 'worker-busy' });
    await running;
    await expect(engine.generate({ prompt: 'Once', maxNewTokens: 0 })).rejects.toMatchObject({ code: 'bad-params' });
  });

  it('applies top-p: a tiny nucleus always keeps only the most probable token (greedy), a seed reproduces a wider one', async () => {
    const greedy = await engine.generate({ prompt: 'Once upon a time', maxNewTokens: 24 });
    const narrow = await engine.generate({
      prompt: 'Once upon a time',
      maxNewTokens: 24,
      sampling: { seed: 3, temperature: 1.5, topP: 1e-6 },
    });
    expect(narrow.tokenIds).toEqual(greedy.tokenIds);
    const wide = { seed: 3, temperature: 1.5, topP: 0.9 };
    const a = await engine.generate({ prompt: 'Once upon a time', maxNewTokens: 24, sampling: wide });
    const b = await engine.generate({ prompt: 'Once upon a time', maxNewTokens: 24, sampling: wide });
    expect(b.tokenIds).toEqual(a.tokenIds);
    expect(a.tokenIds).not.toEqual(greedy.tokenIds);
  });

  it('runs the generated tiny Llama (present on every machine after npm install)', async () => {
    const tiny = new NodeInferenceEngine(dirs);
    const loaded = await tiny.load('webtensor/tiny-llama');
    expect(loaded).toMatchObject({ modelId: 'webtensor/tiny-llama', device: 'wasm' });
    const out = await tiny.generate({ prompt: 'Hello', maxNewTokens: 8 });
    expect(out.tokenIds).toHaveLength(8);
  }, 60_000);

  it('refuses a model file with a changed byte, naming it, and models it cannot serve', async () => {
    const copy = mkdtempSync(join(tmpdir(), 'models-'));
    cpSync(join(dirs.shared, 'karpathy'), join(copy, 'karpathy'), { recursive: true });
    const file = join(copy, 'karpathy/stories260K/onnx/model.onnx');
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    writeFileSync(file, bytes);
    const tampered = new NodeInferenceEngine({ generated: dirs.generated, shared: copy });
    await expect(tampered.load('karpathy/stories260K')).rejects.toMatchObject({
      code: 'model-file',
      message: expect.stringMatching(/model\.onnx/),
    });
    await expect(tampered.load('nobody/nothing')).rejects.toMatchObject({ code: 'unknown-model' });
    await expect(
      new NodeInferenceEngine({ generated: dirs.generated, shared: join(copy, 'none') }).load('karpathy/stories260K'),
    ).rejects.toMatchObject({ code: 'model-file', message: expect.stringMatching(/is missing/) });
  });
});
