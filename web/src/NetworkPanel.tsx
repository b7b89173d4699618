import { useState } from 'react';
import { encodeKey, importKeyFile } from '../../core/key-file.ts';
import { NodeError } from '../../shared/errors.ts';
import { useStore, type TabNode } from './shell/node-context.ts';

const short = (id: string | null) => (id ? `${id.slice(0, 8)}…${id.slice(-6)}` : '—');

/** This tab as a node: identity, relay, direct peers and the network's announce channel. */
export function NetworkPanel({ tab }: { tab: TabNode }) {
  const { node } = tab;
  const state = useStore(node.status, node.status.get());
  const services = useStore(node.services, null);
  const relay = useStore(services?.relay.state, null);
  const peers = useStore(services?.peers.peers, []);
  const refused = useStore(services?.rpc.refusals, {});
  const messages = useStore(services?.announcements.messages, []);
  const [text, setText] = useState('');
  const [sendError, setSendError] = useState<string | null>(null);
  const [keyNote, setKeyNote] = useState<string | null>(null);

  function downloadKey() {
    if (!services) return;
    const bytes = encodeKey(services.key) as Uint8Array<ArrayBuffer>;
    const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `webtensor-${state.peerId?.slice(-8) ?? 'node'}.key`;
    a.click();
    URL.revokeObjectURL(url);
  }

  async function uploadKey(file: File) {
    try {
      if (!services) throw new NodeError('not-started', 'Start the node first, then import a key into its slot.');
      const peerId = await importKeyFile(services.identity, new Uint8Array(await file.arrayBuffer()));
      setKeyNote(`Imported. Reload the page to become ${short(peerId)}.`);
    } catch (err) {
      setKeyNote((err as Error).message);
    }
  }

  return (
    <section className="card" aria-labelledby="net-title">
      <h2 id="net-title">This tab on the network</h2>
      {state.status === 'idle' && (
        <>
          <p>
            Start this tab as a node: it gets a persistent identity, reserves a slot on the relay and connects directly
            to other tabs over WebRTC.
          </p>
          <button type="button" onClick={() => void node.start().catch(() => {})}>
            Start node
          </button>
        </>
      )}
      {state.status === 'starting' && <p>Starting: claiming an identity, dialling the relay…</p>}
      {state.error && (
        <p role="alert" className="error">
          {state.error}
        </p>
      )}
      {state.peerId && relay && (
        <dl className="facts">
          <dt>peer id</dt>
          <dd>
            <code title={state.peerId}>{short(state.peerId)}</code>{' '}
            <button
              type="button"
              className="secondary small"
              onClick={() => void navigator.clipboard?.writeText(state.peerId!)}
            >
              copy
            </button>
          </dd>
          <dt>identity slot</dt>
          <dd>
            {state.slot}{' '}
            <button type="button" className="secondary small" onClick={downloadKey}>
              export key
            </button>{' '}
            <label className="secondary small file-button">
              import key
              <input
                type="file"
                className="visually-hidden"
                onChange={(e) => {
                  const file = e.target.files?.[0];
                  if (file) void uploadKey(file);
                  e.target.value = '';
                }}
              />
            </label>
            {keyNote && <span className="muted"> {keyNote}</span>}
          </dd>
          <dt>relay</dt>
          <dd data-testid="relay-status">
            {relay.reserved
              ? 'connected, reserved'
              : relay.connected
                ? 'connected, reserving…'
                : 'not connected, retrying…'}
            {relay.reconnects > 0 && ` (reconnected ${relay.reconnects}×)`}
          </dd>
        </dl>
      )}
      {state.status === 'running' && (
        <>
          <h3>Peers ({peers.filter((p) => p.direct).length} direct)</h3>
          {peers.length === 0 ? (
            <p className="muted">
              No other tabs yet. Open this page in another tab or browser to see a direct connection appear.
            </p>
          ) : (
            <div className="table-wrap">
              <table data-testid="peers">
                <thead>
                  <tr>
                    <th>peer</th>
                    <th>connection</th>
                    <th>round trip</th>
                    <th>refused</th>
                  </tr>
                </thead>
                <tbody>
                  {peers.map((p) => (
                    <tr key={p.peerId}>
                      <td>
                        <code title={p.peerId}>{short(p.peerId)}</code>
                      </td>
                      <td>{p.direct ? 'direct' : 'via relay'}</td>
                      <td>{p.rttMs === null ? '…' : `${p.rttMs.toFixed(0)} ms`}</td>
                      <td>{refused[p.peerId] ?? 0}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <h3>Announcements</h3>
          <form
            className="actions"
            onSubmit={(e) => {
              e.preventDefault();
              if (!text.trim()) return;
              setSendError(null);
              services!.announcements.publish(text.trim()).then(
                () => setText(''),
                (err: Error) => setSendError(`Could not publish: ${err.message}`),
              );
            }}
          >
            <label className="visually-hidden" htmlFor="announce">
              Announcement
            </label>
            <input
              id="announce"
              value={text}
              maxLength={500}
              onChange={(e) => setText(e.target.value)}
              placeholder="Say hello to every tab"
            />
            <button type="submit">Publish</button>
          </form>
          {sendError && <p className="error">{sendError}</p>}
          <ul className="messages">
            {messages
              .slice(-5)
              .reverse()
              .map((m) => (
                <li key={`${m.from}-${m.at}`}>
                  <code>{short(m.from)}</code> {m.text}
                </li>
              ))}
          </ul>
        </>
      )}
    </section>
  );
}
