/** Typed handle on the Yuma worker (Comlink), created lazily and shared by the page and the automation API. */
import { wrap, type Remote } from 'comlink';
import type { YumaWorkerApi } from '../../worker/yuma.worker.ts';

let remote: Remote<YumaWorkerApi> | undefined;

export function yumaWorker(): Remote<YumaWorkerApi> {
  remote ??= wrap<YumaWorkerApi>(
    new Worker(new URL('../../worker/yuma.worker.ts', import.meta.url), { type: 'module' }),
  );
  return remote;
}
