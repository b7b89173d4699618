/**
 * Vite plugin: serve local model files under /models/<version>/<org>/<name>/<file>, from ../shared/models
 * (or WEBTENSOR_SHARED/models), in dev and preview. Only files listed in the catalogue are served, so nothing
 * else in that folder (or outside it) can be read through this route.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Connect, Plugin } from 'vite';
import { catalogue, modelVersion } from '../shared/inference/catalogue.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const modelsDir = resolve(process.env['WEBTENSOR_SHARED'] ?? resolve(root, '../shared'), 'models');

const routes = new Map<string, string>();
for (const entry of catalogue.filter((m) => m.source === 'local'))
  for (const file of entry.files)
    routes.set(`/models/${modelVersion(entry)}/${entry.id}/${file.path}`, join(modelsDir, entry.id, file.path));

const serve: Connect.NextHandleFunction = (req, res, next) => {
  const path = (req.url ?? '').split('?')[0]!;
  if (!path.startsWith('/models/')) return next();
  const file = routes.get(path);
  if (!file || !existsSync(file)) {
    res.statusCode = 404;
    res.setHeader('Content-Type', 'text/plain');
    res.end(
      file ? `model file missing on the server: ${file} (is ../shared/models present?)\n` : 'no such model file\n',
    );
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
