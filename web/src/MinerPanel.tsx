import { useSyncExternalStore } from 'react';
import { catalogue } from '../../shared/inference/catalogue.ts';
import type { NodeRuntime } from './node/runtime.ts';

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** Serving a model to the network: load progress, device, and what this tab has served. */
export function MinerPanel({ runtime }: { runtime: NodeRuntime }) {
  const state = useSyncExternalStore(
    (notify) => {
      runtime.addEventListener('change', notify);
      return () => runtime.removeEventListener('change', notify);
    },
    () => runtime.state,
  );
  const miner = state.miner;
  const model = catalogue.find((m) => m.task === 'text-generation')!;
  const busy = miner.phase === 'verifying' || miner.phase === 'loading';
  const percent = miner.progress.total > 0 ? Math.round((100 * miner.progress.loaded) / miner.progress.total) : 0;

  return (
    <section className="card" aria-labelledby="miner-title">
      <h2 id="miner-title">Mining</h2>
      {miner.phase === 'idle' && (
        <>
          <p>
            Serve <code>{model.id}</code> ({model.licence}) to the network: this tab checks every model file against its
            published hash, loads it in a worker and answers other tabs&apos; requests, streaming tokens back.
          </p>
          <button
            type="button"
            disabled={state.status !== 'running'}
            onClick={() => void runtime.serveModel(model.id).catch(() => {})}
          >
            Serve model
          </button>
          {state.status !== 'running' && <p className="muted">Start the node first.</p>}
        </>
      )}
      {busy && (
        <>
          <p>
            {miner.phase === 'verifying' ? 'Checking model files' : 'Loading the model'}: {mib(miner.progress.loaded)}{' '}
            of {mib(miner.progress.total)}
          </p>
          <progress max={100} value={percent} aria-label="model load progress" />
        </>
      )}
      {miner.lastError && (
        <p role="alert" className="error">
          {miner.lastError}
        </p>
      )}
      {miner.ready && (
        <dl className="facts" data-testid="miner">
          <dt>model</dt>
          <dd>
            <code>{miner.model}</code>
          </dd>
          <dt>device</dt>
          <dd>{miner.device === 'wasm' ? 'WASM (CPU): the pinned path validators check' : miner.device}</dd>
          <dt>requests served</dt>
          <dd>{miner.served}</dd>
          <dt>tokens served</dt>
          <dd>{miner.tokensServed}</dd>
          <dt>last request</dt>
          <dd>{miner.tokensPerSecond === null ? '—' : `${miner.tokensPerSecond.toFixed(0)} tokens/s`}</dd>
        </dl>
      )}
    </section>
  );
}
