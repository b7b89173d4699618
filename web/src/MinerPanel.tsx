import { useSyncExternalStore } from 'react';
import { findModel } from '../../shared/inference/catalogue.ts';
import type { NodeRuntime } from './node/runtime.ts';
import { DeviceSelect } from './DeviceSelect.tsx';

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** Mining: one Start button, then model load progress, the device and why, and what this tab has served. */
export function MinerPanel({ runtime }: { runtime: NodeRuntime }) {
  const state = useSyncExternalStore(
    (notify) => {
      runtime.addEventListener('change', notify);
      return () => runtime.removeEventListener('change', notify);
    },
    () => runtime.state,
  );
  const miner = state.miner;
  const loading = miner.phase === 'downloading' || miner.phase === 'verifying' || miner.phase === 'loading';
  const percent = miner.progress.total > 0 ? Math.round((100 * miner.progress.loaded) / miner.progress.total) : 0;
  const entry = miner.model ? findModel(miner.model) : undefined;
  const idle =
    miner.phase === 'error' || (miner.phase === 'idle' && runtime.role === 'miner' && state.status !== 'idle');

  return (
    <section className="card" aria-labelledby="miner-title">
      <h2 id="miner-title">Mining</h2>
      {idle && (
        <>
          <p>
            {runtime.role === 'miner'
              ? 'This tab is on the network but serves no model yet.'
              : `This tab works as a ${runtime.role}; open another tab to mine.`}
          </p>
          <div className="row">
            <button type="button" onClick={() => void runtime.startRole().catch(() => {})}>
              {miner.phase === 'error' ? 'Try again' : 'Start mining'}
            </button>
            <DeviceSelect runtime={runtime} />
          </div>
        </>
      )}
      {loading && (
        <>
          <p>
            {miner.phase === 'downloading'
              ? 'Downloading from the hub'
              : miner.phase === 'verifying'
                ? 'Checking model files'
                : 'Loading the model'}{' '}
            <code>{miner.model}</code>: {mib(miner.progress.loaded)} of {mib(miner.progress.total)}
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
            {entry && <span className="muted"> — {entry.description}</span>}
          </dd>
          <dt>device</dt>
          <dd data-testid="miner-device">
            {miner.device === 'webgpu' ? 'WebGPU' : 'WASM (CPU)'}: {miner.deviceReason}
          </dd>
          <dt>status</dt>
          <dd>{state.status === 'running' ? 'serving the network' : 'model ready; connecting to the network…'}</dd>
          <dt>requests served</dt>
          <dd>{miner.served}</dd>
          <dt>tokens served</dt>
          <dd>{miner.tokensServed}</dd>
          <dt>last request</dt>
          <dd>{miner.tokensPerSecond === null ? '—' : `${miner.tokensPerSecond.toFixed(0)} tokens/s`}</dd>
          <dt>queue</dt>
          <dd>
            {miner.queueDepth} waiting or running
            {miner.busyRefusals > 0 && `; ${miner.busyRefusals} turned away as busy`}
          </dd>
        </dl>
      )}
    </section>
  );
}
