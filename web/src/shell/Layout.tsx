import { shortId } from '../format.ts';
import { useContext, useEffect, useState } from 'react';
import { NavLink, Outlet } from 'react-router';
import { NodeContext, useStore, useTab } from './node-context.ts';
import { idleMiner } from '../../../core/services/miner.ts';

type Theme = 'light' | 'dark';

const systemTheme = (): Theme => (window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');

/** The system's theme until the user picks one with the switch; then the pick, remembered. */
function useTheme(): [Theme, () => void] {
  const [chosen, setChosen] = useState<Theme | null>(() => {
    const saved = localStorage.getItem('webtensor-theme');
    return saved === 'light' || saved === 'dark' ? saved : null;
  });
  useEffect(() => {
    if (chosen) {
      document.documentElement.dataset['theme'] = chosen;
      localStorage.setItem('webtensor-theme', chosen);
    } else delete document.documentElement.dataset['theme'];
  }, [chosen]);
  const theme = chosen ?? systemTheme();
  return [theme, () => setChosen(theme === 'dark' ? 'light' : 'dark')];
}

/** The status bar: relay, peers, block, role, device and identity, always in view. */
function StatusBar() {
  const tab = useTab();
  const status = useStore(tab?.node.status, null);
  const services = useStore(tab?.node.services, null);
  const relayState = useStore(services?.relay.state, null);
  const peers = useStore(services?.peers.peers, []);
  const block = useStore(services?.ledger?.consensus.block, null);
  const miner = useStore(services?.miner?.state, idleMiner);
  const settings = useStore(tab?.roles.settings, null);
  const [copied, setCopied] = useState(false);
  if (!tab || !status || !settings) return null;
  const relay = relayState?.reserved
    ? 'relay: connected'
    : relayState?.connected
      ? 'relay: reserving…'
      : 'relay: offline';
  const direct = peers.filter((p) => p.direct).length;
  const peerId = status.peerId;
  return (
    <div className="status-bar" role="status" aria-label="node status" data-testid="status-bar">
      <span className={relayState?.reserved ? 'ok' : 'warn'}>{status.status === 'idle' ? 'not started' : relay}</span>
      <span>{direct} direct peers</span>
      <span>block {block ?? '—'}</span>
      <span>role: {settings.role}</span>
      <span>device: {miner.device ?? '—'}</span>
      {peerId && (
        <span>
          <code title={peerId}>{shortId(peerId)}</code>{' '}
          <button
            type="button"
            className="secondary small"
            onClick={() =>
              void navigator.clipboard?.writeText(peerId).then(
                () => setCopied(true),
                () => setCopied(false),
              )
            }
          >
            {copied ? 'copied' : 'copy'}
          </button>
        </span>
      )}
    </div>
  );
}

/** One layout for every page: navigation, theme, status bar, and the page. */
export function Layout() {
  const [theme, toggleTheme] = useTheme();
  const { configError } = useContext(NodeContext);
  return (
    <>
      <header className="top">
        <div className="top-row">
          <NavLink to="/" className="brand">
            webtensor
          </NavLink>
          <nav aria-label="pages">
            <NavLink to="/" end>
              Mine
            </NavLink>
            <NavLink to="/validate">Validate</NavLink>
            <NavLink to="/dashboard">Dashboard</NavLink>
            <NavLink to="/ask">Ask</NavLink>
            <NavLink to="/wallet">Wallet</NavLink>
            <NavLink to="/jobs">Jobs</NavLink>
          </nav>
          <button
            type="button"
            className="secondary small"
            onClick={toggleTheme}
            aria-label={`switch to ${theme === 'dark' ? 'light' : 'dark'} theme`}
          >
            {theme === 'dark' ? 'light' : 'dark'} theme
          </button>
        </div>
        <StatusBar />
      </header>
      <main>
        {configError && (
          <p role="alert" className="error card">
            {configError}
          </p>
        )}
        <Outlet />
      </main>
    </>
  );
}
