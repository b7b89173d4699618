import { shortId } from '../format.ts';
import { useContext, useEffect, useState } from 'react';
import { NavLink, Outlet } from 'react-router';
import { NodeContext, useNodeState, useRuntime } from './node-context.ts';

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
  const state = useNodeState();
  const runtime = useRuntime();
  const [copied, setCopied] = useState(false);
  if (!state || !runtime) return null;
  const relay = state.relay.reserved
    ? 'relay: connected'
    : state.relay.connected
      ? 'relay: reserving…'
      : 'relay: offline';
  const direct = state.peers.filter((p) => p.direct).length;
  return (
    <div className="status-bar" role="status" aria-label="node status" data-testid="status-bar">
      <span className={state.relay.reserved ? 'ok' : 'warn'}>{state.status === 'idle' ? 'not started' : relay}</span>
      <span>{direct} direct peers</span>
      <span>block {state.ledger?.block ?? '—'}</span>
      <span>role: {runtime.role}</span>
      <span>device: {state.miner.device ?? '—'}</span>
      {state.peerId && (
        <span>
          <code title={state.peerId}>{shortId(state.peerId)}</code>{' '}
          <button
            type="button"
            className="secondary small"
            onClick={() =>
              void navigator.clipboard?.writeText(state.peerId!).then(
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
