import { LedgerPanel } from '../LedgerPanel.tsx';
import { MinerPanel } from '../MinerPanel.tsx';
import { NetworkPanel } from '../NetworkPanel.tsx';
import { DeviceSelect } from '../DeviceSelect.tsx';
import { catalogue, hubCatalogue } from '../../../shared/inference/catalogue.ts';
import { idleMiner } from '../../../core/services/miner.ts';
import { useStore, useTab } from '../shell/node-context.ts';

/** Mine (`/`): what webtensor is and one Start button for a newcomer; then this tab's mining, economy and peers. */
export function MinePage() {
  const tab = useTab();
  const status = useStore(tab?.node.status, null);
  const services = useStore(tab?.node.services, null);
  const miner = useStore(services?.miner?.state, idleMiner);
  const settings = useStore(tab?.roles.settings, null);
  if (!tab || !status || !settings) return null;
  const { roles } = tab;
  const fresh = status.status === 'idle' && miner.phase === 'idle';
  const start = () => {
    try {
      roles.setRole(settings.role === 'client' ? 'miner' : settings.role);
    } catch {
      /* already working in another role: Start just starts it */
    }
    void roles.startRole().catch(() => {});
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
                <select value={settings.model ?? ''} onChange={(e) => roles.setModel(e.target.value || null)}>
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
              <DeviceSelect roles={roles} />
            </div>
          </div>
        )}
      </section>
      {status.error && (
        <p role="alert" className="error card">
          {status.error}
        </p>
      )}
      {!fresh && (settings.role === 'miner' || miner.phase !== 'idle') && <MinerPanel tab={tab} />}
      {!fresh && services?.ledger && <LedgerPanel tab={tab} />}
      {!fresh && <NetworkPanel tab={tab} />}
    </>
  );
}
