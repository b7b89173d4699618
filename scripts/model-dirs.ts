/** Where the server finds model files: generated ones (scripts/tiny-llama, at install) and ../shared/models. */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const modelsDir = resolve(process.env['WEBTENSOR_SHARED'] ?? resolve(root, '../shared'), 'models');
export const generatedModelsDir = resolve(root, 'generated/models');
