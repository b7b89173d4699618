import { LedgerPanel } from '../LedgerPanel.tsx';
import { MinerPanel } from '../MinerPanel.tsx';
import { NetworkPanel } from '../NetworkPanel.tsx';
import { DeviceSelect } from '../DeviceSelect.tsx';
import { catalogue, hubCatalogue } from '../../../shared/inference/catalogue.ts';
import { useNodeState, useRuntime } from '../shell/node-context.ts';

/** Mine (`/`): what webtensor is and one Start button for a newcomer; then this tab's mining, economy and peers. */
export function MinePage() {
  const runtime = useRuntime();
  const state = useNodeState();
  if (!runtime || !state) return null;
  const fresh = state.status === 'idle' && state.miner.phase === 'idle';
  const start = () => {
    try {
      runtime.setRole(runtime.role === 'client' ? 'miner' : runtime.role);
    } catch {
      /* already working in another role: Start just starts it */
    }
    void runtime.startRole().catch(() => {});
  };
  return (
    <>
      <section className="hero" aria-labelledby="hero-title">
        <h1 id="hero-title">Mine with this tab</h1>
        <p className="lead">
          webtensor is a peer-to-peer inference network that lives in browser tabs. Miners run a small language model
          and answer other tabs over direct WebRTC; validators check the answers and publish weights; Yuma consensus,
          the mechanism of Bittensor, turns those weights into rewards, computed the same on every tab.
        </p>
        {fresh && (
          <div className="card first-run">
            <p>
              <strong>What this tab will do:</strong> check and load a model (about 1 MB) in a background worker, earn
              its place on the network with a short proof of work, then answer requests from other tabs and earn stake
              when validators find its answers right. Closing the tab stops it; your identity stays in this browser.
            </p>
            <div className="row">
              <button type="button" className="big" onClick={start}>
                Start
              </button>
              <label>
                Model{' '}
                <select
                  value={runtime.modelPreference ?? ''}
                  onChange={(e) => runtime.setModel(e.target.value || null)}
                >
                  <option value="">automatic (the network&apos;s model)</option>
                  {catalogue
                    .filter((m) => m.task === 'text-generation')
                    .map((m) => (
                      <option key={m.id} value={m.id}>
                        {m.id}
                      </option>
                    ))}
                  {hubCatalogue
                    .filter((m) => m.task === 'text-generation')
                    .map((m) => (
                      <option key={m.id} value={m.id}>
                        {m.id} (download from the hub)
                      </option>
                    ))}
                </select>
              </label>
              <DeviceSelect runtime={runtime} />
            </div>
          </div>
        )}
      </section>
      {state.error && (
        <p role="alert" className="error card">
          {state.error}
        </p>
      )}
      {!fresh && (runtime.role === 'miner' || state.miner.phase !== 'idle') && <MinerPanel runtime={runtime} />}
      {!fresh && <LedgerPanel runtime={runtime} />}
      {!fresh && <NetworkPanel runtime={runtime} />}
    </>
  );
}
