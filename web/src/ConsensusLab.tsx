import { useState } from 'react';
import { parseJsonExact, type CaseOutput, type EpochOutput } from '../../shared/yuma/index.ts';
import { cabalExample } from '../../shared/yuma/examples.ts';
import { yumaWorker } from '../../core/browser/workers.ts';
import { tao } from './format.ts';

const percent = (x: number) => `${(x * 100).toFixed(2)} %`;

/** Run one Yuma epoch in the consensus worker and show the metagraph it produces. */
export function ConsensusLab() {
  const [text, setText] = useState(() => JSON.stringify(cabalExample, null, 2));
  const [result, setResult] = useState<CaseOutput | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function run() {
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      let data: unknown;
      try {
        // Stakes are u64 rao: read integers exactly (bigint beyond 2^53), never through a float.
        data = parseJsonExact(text);
      } catch (e) {
        setError(`The case is not valid JSON (${(e as Error).message}). Fix the text and run again.`);
        return;
      }
      try {
        setResult(await yumaWorker().runCase(data));
      } catch (e) {
        setError(`This case cannot run: ${(e as Error).message}. Fix that field and run again.`);
      }
    } finally {
      setBusy(false);
    }
  }

  const epoch: EpochOutput | undefined = result && 'epochs' in result ? result.epochs.at(-1) : undefined;
  return (
    <section className="card" aria-labelledby="lab-title">
      <h2 id="lab-title">Consensus lab</h2>
      <p>
        Edit a Yuma epoch (the format of subtensor&apos;s test vectors) and run it in the consensus worker. The example
        is three honest validators and a 15 % cabal that gives its own miner (uid 6) most of its weight: the cabal is
        clipped to consensus, so its miner earns no more than honest validators say it should.
      </p>
      <label htmlFor="case-input">Epoch case (JSON)</label>
      <textarea id="case-input" spellCheck={false} value={text} onChange={(e) => setText(e.target.value)} rows={12} />
      <div className="actions">
        <button type="button" onClick={run} disabled={busy}>
          {busy ? 'Running…' : 'Run epoch'}
        </button>
        <button type="button" className="secondary" onClick={() => setText(JSON.stringify(cabalExample, null, 2))}>
          Reset example
        </button>
      </div>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {epoch && (
        <div className="table-wrap">
          <table data-testid="metagraph">
            <thead>
              <tr>
                <th>uid</th>
                <th>consensus</th>
                <th>incentive</th>
                <th>dividends</th>
                <th>validator trust</th>
                <th>emission</th>
                <th>permit</th>
              </tr>
            </thead>
            <tbody>
              {epoch.consensus.map((_, uid) => (
                <tr key={uid}>
                  <td>{uid}</td>
                  <td>{percent(epoch.consensus[uid]!)}</td>
                  <td>{percent(epoch.incentive[uid]!)}</td>
                  <td>{percent(epoch.dividends[uid]!)}</td>
                  <td>{percent(epoch.validator_trust[uid]!)}</td>
                  <td>{tao(epoch.emission[uid]!, 6)}</td>
                  <td>{epoch.new_validator_permit[uid] ? 'yes' : 'no'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {result && 'subcases' in result && <pre>{JSON.stringify(result.subcases)}</pre>}
    </section>
  );
}
