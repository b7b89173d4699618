import { shortId, u16Ratio, units } from '../format.ts';
import { useMemo, useState } from 'react';
import { Chart, type ChartOption } from '../charts/Chart.tsx';
import { useNodeState, useRuntime } from '../shell/node-context.ts';

const u16 = (v: number) => u16Ratio(v).toFixed(3);

/** Validate (`/validate`): the validator's loop, its scores per miner and their history, its weights and earnings. */
export function ValidatePage() {
  const runtime = useRuntime();
  const state = useNodeState();
  const validator = state?.validator ?? null;
  const [roleError, setRoleError] = useState<string | null>(null);
  const history: ChartOption = useMemo(
    () => ({
      grid: { left: 40, right: 10, top: 30, bottom: 30 },
      tooltip: { trigger: 'axis' },
      legend: { top: 0 },
      xAxis: { type: 'category', name: 'challenge' },
      yAxis: { type: 'value', min: 0, max: 1, name: 'score' },
      series: (validator?.scores ?? []).map((s) => ({
        type: 'line',
        name: `uid ${s.uid}`,
        showSymbol: false,
        data: s.history.map((v, k) => [k, v]),
      })),
    }),
    [validator],
  );
  if (!runtime || !state) return null;
  const netuid = runtime.subnet?.netuid;
  const uid = netuid === undefined ? null : (runtime.ledger?.uidOn(netuid) ?? null);
  const last = state.ledger?.snapshot?.epochs.filter((e) => e.netuid === netuid).at(-1);
  const mine = uid === null ? undefined : last?.uids[uid];

  const start = () => {
    try {
      runtime.setRole('validator');
    } catch (err) {
      setRoleError((err as Error).message);
      return;
    }
    void runtime.startRole().catch(() => {});
  };

  return (
    <>
      <section className="hero" aria-labelledby="validate-title">
        <h1 id="validate-title">Validate</h1>
        <p className="lead">
          A validator asks miners questions (seeded prompts, greedy decoding, a deadline), checks every answer against
          its own run of the same model, and scores correctness, speed and availability. Once per epoch it commits its
          weights and reveals them later, so nobody can copy them in time. Stake makes its opinion count.
        </p>
        {!validator && (
          <div className="row">
            <button
              type="button"
              className="big"
              onClick={start}
              disabled={runtime.role === 'miner' && state.miner.phase !== 'idle'}
            >
              Start validating
            </button>
            {runtime.role === 'miner' && state.miner.phase !== 'idle' && (
              <span className="muted">This tab is mining; open another tab to validate.</span>
            )}
          </div>
        )}
        {validator && (
          <div className="row">
            <button
              type="button"
              className="secondary"
              onClick={() => (validator.running ? runtime.validator?.stop() : runtime.validator?.start())}
            >
              {validator.running ? 'Stop' : 'Resume'}
            </button>
            {runtime.ledger?.config.profile === 'test' && uid !== null && !mine?.validatorPermit && (
              <button
                type="button"
                className="secondary"
                onClick={() =>
                  void runtime
                    .ledger!.faucetStake(state.peerId!, 1_000_000_000_000n)
                    .catch((err: Error) => setRoleError(`The faucet refused: ${err.message}`))
                }
              >
                Get 1000 test stake from the faucet
              </button>
            )}
          </div>
        )}
      </section>
      {(state.error ?? roleError) && (
        <p role="alert" className="error card">
          {state.error ?? roleError}
        </p>
      )}
      {validator && (
        <section className="card" aria-labelledby="loop-title">
          <h2 id="loop-title">The loop</h2>
          <dl className="facts" data-testid="validator">
            <dt>UID</dt>
            <dd>{uid ?? 'registering…'}</dd>
            <dt>stake</dt>
            <dd>{mine ? units(mine.stake).toLocaleString() : '—'}</dd>
            <dt>in flight</dt>
            <dd>
              {validator.inFlight
                ? `uid ${validator.inFlight.uid}: “${validator.inFlight.prompt}”`
                : validator.running
                  ? 'waiting for the next challenge'
                  : 'stopped'}
            </dd>
            <dt>challenges</dt>
            <dd>{validator.challenges}</dd>
            <dt>weights committed</dt>
            <dd>
              {validator.committed
                ? `epoch ${validator.committed.epoch}: ${validator.committed.uids.map((u, k) => `uid ${u} ${u16(validator.committed!.values[k]!)}`).join(', ')}`
                : 'not yet (after every miner has been challenged)'}
            </dd>
            <dt>weights revealed</dt>
            <dd>{validator.revealed ? `epoch ${validator.revealed.epoch}` : 'not yet'}</dd>
            <dt>validator trust</dt>
            <dd>{mine ? u16(mine.validatorTrust) : '—'}</dd>
            <dt>dividends (last epoch)</dt>
            <dd>{mine ? `${u16(mine.dividends)} (${units(mine.emission).toFixed(4)} earned)` : '—'}</dd>
          </dl>
          {validator.lastError && <p className="error">{validator.lastError}</p>}
          <h3>Scores per miner</h3>
          <div className="table-wrap">
            <table data-testid="validator-scores">
              <thead>
                <tr>
                  <th scope="col">uid</th>
                  <th scope="col">miner</th>
                  <th scope="col">score</th>
                  <th scope="col">correct</th>
                  <th scope="col">last</th>
                  <th scope="col">latency</th>
                </tr>
              </thead>
              <tbody>
                {validator.scores.map((s) => (
                  <tr key={s.uid}>
                    <td>{s.uid}</td>
                    <td>
                      <code title={s.hotkey}>{shortId(s.hotkey)}</code>
                    </td>
                    <td>{s.score.toFixed(2)}</td>
                    <td>
                      {s.correct}/{s.challenges}
                    </td>
                    <td>{s.last}</td>
                    <td>{s.latencyMs === null ? '—' : `${s.latencyMs.toFixed(0)} ms`}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {validator.scores.length > 0 && <Chart option={history} label="score history per miner" height={220} />}
        </section>
      )}
    </>
  );
}
