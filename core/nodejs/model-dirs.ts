/** Where model files live on this machine: generated ones in generated/models, the others in ../shared/models. */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface ModelDirs {
  generated: string;
  shared: string;
}

export const defaultModelDirs = (): ModelDirs => ({
  generated: resolve(root, 'generated/models'),
  shared: resolve(process.env['WEBTENSOR_SHARED'] ?? resolve(root, '../shared'), 'models'),
});
