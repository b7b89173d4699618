import { findModel } from '../../shared/inference/catalogue.ts';
import { idleMiner } from '../../core/services/miner.ts';
import { DeviceSelect } from './DeviceSelect.tsx';
import { useStore, type TabNode } from './shell/node-context.ts';

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** Mining: one Start button, then model load progress, the device and why, and what this tab has served. */
export function MinerPanel({ tab }: { tab: TabNode }) {
  const { node, roles } = tab;
  const status = useStore(node.status, node.status.get());
  const services = useStore(node.services, null);
  const miner = useStore(services?.miner?.state, idleMiner);
  const { role } = useStore(roles.settings, roles.settings.get());
  const loading = miner.phase === 'downloading' || miner.phase === 'verifying' || miner.phase === 'loading';
  const percent = miner.progress.total > 0 ? Math.round((100 * miner.progress.loaded) / miner.progress.total) : 0;
  const entry = miner.model ? findModel(miner.model) : undefined;
  const idle = miner.phase === 'error' || (miner.phase === 'idle' && role === 'miner' && status.status !== 'idle');

  return (
    <section className="card" aria-labelledby="miner-title">
      <h2 id="miner-title">Mining</h2>
      {idle && (
        <>
          <p>
            {role === 'miner'
              ? 'This tab is on the network but serves no model yet.'
              : `This tab works as a ${role}; open another tab to mine.`}
          </p>
          <div className="row">
            <button type="button" onClick={() => void roles.startRole().catch(() => {})}>
              {miner.phase === 'error' ? 'Try again' : 'Start mining'}
            </button>
            <DeviceSelect roles={roles} />
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
          <dd>{status.status === 'running' ? 'serving the network' : 'model ready; connecting to the network…'}</dd>
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
