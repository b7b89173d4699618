import { shortId } from '../format.ts';
import { useState } from 'react';
import { useStore, useTab } from '../shell/node-context.ts';
import type { AuditState } from '../../../core/services/auditor.ts';

interface Answer {
  text: string;
  miner: string | null;
  uid: number | null;
  latencyMs: number | null;
  tokensPerSecond: number | null;
  tried: string[];
  error: string | null;
  done: boolean;
  /** The request whose signed answer went to a validator to check (the user opted in), or null. */
  audited: string | null;
}

/** Whether this browser's user lets validators check the answers it gets (kept across visits). */
const AUDIT_OPT_IN = 'webtensor.ask.checkAnswers';

/** Ask (`/ask`): the client service sends the prompt to the miner with the most incentive (falling back down the list). */
export function AskPage() {
  const tab = useTab();
  const services = useStore(tab?.node.services, null);
  const status = useStore(tab?.node.status, null);
  const [prompt, setPrompt] = useState('Once upon a time');
  const [tokens, setTokens] = useState(48);
  const [netuid, setNetuid] = useState<number | null>(null);
  const [answer, setAnswer] = useState<Answer | null>(null);
  const [checkAnswers, setCheckAnswers] = useState(() => localStorage.getItem(AUDIT_OPT_IN) === 'yes');
  const audits = useStore(services?.auditor.state, null);
  if (!tab || !status) return null;
  const subnets = services?.ledger?.network.subnets ?? [];
  const subnet = subnets.find((s) => s.netuid === netuid) ?? tab.roles.subnet();

  async function ask() {
    if (!tab || !subnet) return;
    const blank: Answer = {
      text: '',
      miner: null,
      uid: null,
      latencyMs: null,
      tokensPerSecond: null,
      tried: [],
      error: null,
      done: false,
      audited: null,
    };
    setAnswer(blank);
    const tried = (t: { miner: { hotkey: string }; reason: string }[]) =>
      t.map((x) => `${shortId(x.miner.hotkey)}: ${x.reason}`);
    try {
      const { client, auditor } = await tab.node.start();
      const result = await client.ask(subnet, prompt.trim(), tokens, (p) =>
        setAnswer({
          ...blank,
          text: p.text,
          miner: p.miner?.hotkey ?? null,
          uid: p.miner?.uid ?? null,
          tried: tried(p.tried),
        }),
      );
      setAnswer({
        ...blank,
        text: result.text,
        miner: result.miner!.hotkey,
        uid: result.miner!.uid,
        latencyMs: result.latencyMs,
        tokensPerSecond: result.tokensPerSecond,
        tried: tried(result.tried),
        done: true,
        audited:
          checkAnswers && auditor.offer(subnet.netuid, result.params, result.result) ? result.result.requestId : null,
      });
    } catch (err) {
      setAnswer({ ...blank, done: true, error: (err as Error).message });
    }
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
            <label title="A validator checks the miner's signed answer against its own run of the model; a miner that cheats users loses its earnings.">
              <input
                type="checkbox"
                data-testid="check-answers"
                checked={checkAnswers}
                onChange={(e) => {
                  setCheckAnswers(e.target.checked);
                  localStorage.setItem(AUDIT_OPT_IN, e.target.checked ? 'yes' : 'no');
                }}
              />{' '}
              Let validators check my answers
            </label>
            <button type="submit" disabled={busy || !subnet || !prompt.trim()}>
              {busy ? 'Answering…' : 'Ask'}
            </button>
          </div>
          {!subnet && status.status !== 'error' && <p className="muted">Joining the network…</p>}
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
          {answer.audited && <p data-testid="answer-check">{checkText(audits, answer.audited)}</p>}
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

/** What became of the check of the answer to `requestId`. */
function checkText(audits: AuditState | null, requestId: string): string {
  const verdict = audits?.recent.find((r) => r.requestId === requestId);
  const unchecked = audits?.unchecked.find((r) => r.requestId === requestId);
  // (A validator's own message may already end its sentence.)
  if (unchecked) return `No validator could check it: ${unchecked.reason.replace(/[.!?]$/, '')}.`;
  if (!verdict) return 'Sent to a validator to check…';
  return verdict.verdict === 'correct'
    ? `Checked by validator ${shortId(verdict.validator)}: correct.`
    : `Checked by validator ${shortId(verdict.validator)}: wrong. The miner that gave it loses its earnings for a while.`;
}
