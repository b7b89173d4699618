/** What the model server offers: a fresh machine without ../shared/models still has the generated model. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';

afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
});

it('offers the generated model when ../shared/models is absent', async () => {
  vi.stubEnv('WEBTENSOR_SHARED', mkdtempSync(join(tmpdir(), 'no-shared-')));
  const { availableModels } = await import('./vite-models.ts');
  expect(availableModels()).toEqual(['webtensor/tiny-llama']);
});

it('offers the shared models too when they are beside the repository', async () => {
  const { availableModels } = await import('./vite-models.ts');
  expect(availableModels()).toEqual(['webtensor/tiny-llama', 'karpathy/stories260K', 'karpathy/stories260K-embed']);
});
