import { shortId } from '../format.ts';
import { useState } from 'react';
import { RpcError } from '../../../shared/p2p/messages.ts';
import { useNodeState, useRuntime } from '../shell/node-context.ts';

interface Answer {
  text: string;
  miner: string | null;
  uid: number | null;
  latencyMs: number | null;
  tokensPerSecond: number | null;
  tried: string[];
  error: string | null;
  done: boolean;
}

/** Ask (`/ask`): a prompt goes to the miner with the most incentive (falling back down the list) and streams back. */
export function AskPage() {
  const runtime = useRuntime();
  const state = useNodeState();
  const [prompt, setPrompt] = useState('Once upon a time');
  const [tokens, setTokens] = useState(48);
  const [netuid, setNetuid] = useState<number | null>(null);
  const [answer, setAnswer] = useState<Answer | null>(null);
  if (!runtime || !state) return null;
  const subnets = runtime.ledger?.config.subnets ?? [];
  const subnet = subnets.find((s) => s.netuid === netuid) ?? runtime.subnet;

  /** Miners of the subnet this tab reaches directly, highest incentive first (UIDs new since the last epoch last). */
  function candidates(): { uid: number; hotkey: string }[] {
    const snapshot = state!.ledger?.snapshot;
    const sub = snapshot?.subnets.find((s) => s.netuid === subnet?.netuid);
    const last = snapshot?.epochs.filter((e) => e.netuid === subnet?.netuid).at(-1);
    const direct = new Set(state!.peers.filter((p) => p.direct).map((p) => p.peerId));
    const incentive = (uid: number, hotkey: string) =>
      last?.uids[uid]?.hotkey === hotkey ? last.uids[uid]!.incentive : -1;
    return (sub?.uids ?? [])
      .map((u, uid) => ({ uid, hotkey: u.hotkey, role: u.role }))
      .filter((u) => u.role === 'miner' && direct.has(u.hotkey))
      .sort((a, b) => incentive(b.uid, b.hotkey) - incentive(a.uid, a.hotkey));
  }

  async function ask() {
    if (!runtime || !subnet) return;
    if (state!.status === 'idle') {
      try {
        runtime.setRole('client');
      } catch {
        /* keep the role this tab already has */
      }
      await runtime.start().catch(() => {});
    }
    const list = candidates();
    const a: Answer = {
      text: '',
      miner: null,
      uid: null,
      latencyMs: null,
      tokensPerSecond: null,
      tried: [],
      error: null,
      done: false,
    };
    setAnswer({ ...a });
    if (list.length === 0) {
      setAnswer({
        ...a,
        done: true,
        error: 'No miner of this subnet is connected to this tab yet. Wait a few seconds, or open a miner tab.',
      });
      return;
    }
    for (const m of list) {
      const start = performance.now();
      let text = '';
      setAnswer({ ...a, miner: m.hotkey, uid: m.uid });
      try {
        const result = await runtime.infer(
          m.hotkey,
          { model: subnet.model, prompt: prompt.trim(), maxNewTokens: tokens },
          {
            timeoutMs: 20_000,
            onText: (t) => {
              text += t;
              setAnswer({ ...a, miner: m.hotkey, uid: m.uid, text });
            },
          },
        );
        const ms = performance.now() - start;
        setAnswer({
          ...a,
          text: result.text,
          miner: m.hotkey,
          uid: m.uid,
          latencyMs: ms,
          tokensPerSecond: (result.tokenIds.length * 1000) / ms,
          done: true,
        });
        return;
      } catch (err) {
        a.tried.push(`${shortId(m.hotkey)}: ${err instanceof RpcError ? err.code : (err as Error).message}`);
      }
    }
    setAnswer({ ...a, done: true, error: `Every connected miner failed: ${a.tried.join('; ')}.` });
  }

  const busy = answer !== null && !answer.done;
  return (
    <>
      <section className="hero" aria-labelledby="ask-title">
        <h1 id="ask-title">Ask the network</h1>
        <p className="lead">
          Your prompt goes to the miner the validators rate highest, over a direct connection; if it fails or is too
          slow, the next one answers. This tab needs no model of its own.
        </p>
      </section>
      <section className="card" aria-labelledby="prompt-title">
        <h2 id="prompt-title">Prompt</h2>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (prompt.trim()) void ask();
          }}
        >
          <label htmlFor="ask-prompt">What should the network continue?</label>
          <textarea
            id="ask-prompt"
            rows={3}
            maxLength={2000}
            value={prompt}
            onChange={(e) => setPrompt(e.target.value)}
          />
          <div className="row">
            <label>
              Subnet{' '}
              <select value={subnet?.netuid ?? ''} onChange={(e) => setNetuid(Number(e.target.value))}>
                {subnets.map((s) => (
                  <option key={s.netuid} value={s.netuid}>
                    {s.netuid}: {s.model}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Tokens{' '}
              <input
                type="number"
                min={1}
                max={128}
                value={tokens}
                onChange={(e) => setTokens(Math.max(1, Math.min(128, Number(e.target.value) || 1)))}
              />
            </label>
            <button type="submit" disabled={busy || !subnet || !prompt.trim()}>
              {busy ? 'Answering…' : 'Ask'}
            </button>
          </div>
          {!subnet && <p className="muted">Waiting for the network config from the relay…</p>}
        </form>
      </section>
      {answer && (
        <section className="card" aria-labelledby="answer-title" aria-live="polite">
          <h2 id="answer-title">Answer</h2>
          <p className="answer" data-testid="answer">
            <span className="muted">{prompt.trim()}</span>
            {answer.text}
          </p>
          <dl className="facts" data-testid="answer-facts">
            <dt>served by</dt>
            <dd>{answer.miner ? `uid ${answer.uid} (${shortId(answer.miner)})` : '—'}</dd>
            <dt>latency</dt>
            <dd>{answer.latencyMs === null ? '…' : `${answer.latencyMs.toFixed(0)} ms`}</dd>
            <dt>speed</dt>
            <dd>{answer.tokensPerSecond === null ? '…' : `${answer.tokensPerSecond.toFixed(0)} tokens/s`}</dd>
          </dl>
          {answer.tried.length > 0 && !answer.error && (
            <p className="muted">Fell back after: {answer.tried.join('; ')}</p>
          )}
          {answer.error && (
            <p role="alert" className="error">
              {answer.error}
            </p>
          )}
        </section>
      )}
    </>
  );
}
