/**
 * Vite plugin: serve model files under /models/<version>/<org>/<name>/<file>, in dev and preview: generated
 * models from generated/models, local ones from ../shared/models (or WEBTENSOR_SHARED/models). Only files listed
 * in the catalogue are served, so nothing else in those folders (or outside them) can be read through this route.
 * /models/available.json lists the catalogue models whose files are all present, so a page can pick a default.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Connect, Plugin } from 'vite';
import { catalogue, modelVersion, type ModelEntry } from '../shared/inference/catalogue.ts';
import { generatedModelsDir, modelsDir } from './model-dirs.ts';

const dirOf = (entry: ModelEntry) => (entry.source === 'generated' ? generatedModelsDir : modelsDir);
const served = catalogue;
const routes = new Map<string, string>();
for (const entry of served)
  for (const file of entry.files)
    routes.set(`/models/${modelVersion(entry)}/${entry.id}/${file.path}`, join(dirOf(entry), entry.id, file.path));

/** Models whose files are all on disk (checked per request: ../shared may appear or go while serving). */
export function availableModels(): string[] {
  return served.filter((e) => e.files.every((f) => existsSync(join(dirOf(e), e.id, f.path)))).map((e) => e.id);
}

const serve: Connect.NextHandleFunction = (req, res, next) => {
  const path = (req.url ?? '').split('?')[0]!;
  if (!path.startsWith('/models/')) return next();
  if (path === '/models/available.json') {
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Cache-Control', 'no-store');
    res.end(JSON.stringify({ models: availableModels() }));
    return;
  }
  const file = routes.get(path);
  if (!file || !existsSync(file)) {
    res.statusCode = 404;
    res.setHeader('Content-Type', 'text/plain');
    res.end(file ? `model file missing on the server: ${file}\n` : 'no such model file\n');
    return;
  }
  res.setHeader('Content-Type', file.endsWith('.json') ? 'application/json' : 'application/octet-stream');
  res.setHeader('Content-Length', String(statSync(file).size));
  res.setHeader('Cache-Control', 'public, max-age=31536000, immutable'); // the URL carries the version
  createReadStream(file).pipe(res);
};

export function localModels(): Plugin {
  return {
    name: 'webtensor-local-models',
    configureServer: (server) => void server.middlewares.use(serve),
    configurePreviewServer: (server) => void server.middlewares.use(serve),
  };
}
