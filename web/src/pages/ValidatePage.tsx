import { rao, shortId, tao, u16Ratio } from '../format.ts';
import { useMemo, useState } from 'react';
import { Chart, type ChartOption } from '../charts/Chart.tsx';
import { idleMiner } from '../../../core/services/miner.ts';
import { useStore, useTab } from '../shell/node-context.ts';

const u16 = (v: number) => u16Ratio(v).toFixed(3);

/** Validate (`/validate`): the validator's loop, its scores per miner and their history, its weights and earnings. */
export function ValidatePage() {
  const tab = useTab();
  const status = useStore(tab?.node.status, null);
  const services = useStore(tab?.node.services, null);
  const settings = useStore(tab?.roles.settings, null);
  const miner = useStore(services?.miner?.state, idleMiner);
  const snapshot = useStore(services?.ledger?.consensus.snapshot, null);
  const validatorService = useStore(tab?.roles.validator, null);
  const validator = useStore(validatorService?.state, null);
  const registration = useStore(services?.ledger?.registration.state, null);
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
  if (!tab || !status || !settings) return null;
  const { roles } = tab;
  const ledger = services?.ledger ?? null;
  const netuid = roles.subnet()?.netuid;
  const uid = netuid === undefined || !services ? null : (ledger?.consensus.uidOf(netuid, services.peerId) ?? null);
  const last = snapshot?.epochs.filter((e) => e.netuid === netuid).at(-1);
  const mine = uid === null ? undefined : last?.uids[uid];
  const mining = settings.role === 'miner' && miner.phase !== 'idle';
  // Who nominated this validator, with their stake now and what the closed epochs paid them.
  const self = services?.peerId ?? null;
  const nominators = self
    ? Object.entries(snapshot?.nominations[self] ?? {})
        .filter(([account, stake]) => account !== self && stake > 0n)
        .map(([account, stake]) => {
          const paid = (snapshot?.epochs ?? [])
            .flatMap((e) => e.nominators ?? [])
            .filter((n) => n.hotkey === self && n.account === account)
            .reduce((sum, n) => sum + BigInt(n.amount), 0n);
          return { account, stake, paid };
        })
    : [];

  const start = () => {
    try {
      roles.setRole('validator');
    } catch (err) {
      setRoleError((err as Error).message);
      return;
    }
    void roles.startRole().catch((err: Error) => setRoleError(err.message));
  };

  return (
    <>
      <section className="hero" aria-labelledby="validate-title">
        <h1 id="validate-title">Validate</h1>
        <p className="lead">
          A validator asks miners questions that look like users' requests, checks that every answer's tokens follow
          from the probabilities the miner signed with them, compares half of them with its own run of the same model,
          and scores correctness, speed and availability; an answer proven wrong zeroes the miner for a while. Once per
          epoch it commits its weights and reveals them later, so nobody can copy them in time. Stake makes its opinion
          count.
        </p>
        {!validator && (
          <div className="row">
            <button type="button" className="big" onClick={start} disabled={mining}>
              Start validating
            </button>
            {mining && <span className="muted">This tab is mining; open another tab to validate.</span>}
          </div>
        )}
        {validator && (
          <div className="row">
            <button
              type="button"
              className="secondary"
              onClick={() => (validator.running ? validatorService?.stop() : validatorService?.start())}
            >
              {validator.running ? 'Stop' : 'Resume'}
            </button>
            {ledger?.network.profile === 'test' && services && uid !== null && !mine?.validatorPermit && (
              <button
                type="button"
                className="secondary"
                onClick={() =>
                  void ledger
                    .faucetStake(services.peerId, 1_000_000_000_000n)
                    .catch((err: Error) => setRoleError(`The faucet refused: ${err.message}`))
                }
              >
                Get 1,000 τ of test stake from the faucet
              </button>
            )}
          </div>
        )}
      </section>
      {(status.error ?? roleError) && (
        <p role="alert" className="error card">
          {status.error ?? roleError}
        </p>
      )}
      {validator && (
        <section className="card" aria-labelledby="loop-title">
          <h2 id="loop-title">The loop</h2>
          <dl className="facts" data-testid="validator">
            <dt>UID</dt>
            <dd>
              {uid ??
                (registration?.phase === 'error' ? (
                  // The loop runs meanwhile and starts challenging once a retry lands (core/roles.ts).
                  <span className="error">
                    not registered: {registration.error}
                    {registration.retrying && ' (trying again shortly)'}
                  </span>
                ) : (
                  'registering…'
                ))}
            </dd>
            <dt>stake</dt>
            <dd title={mine ? rao(mine.stake) : undefined}>{mine ? tao(mine.stake) : '—'}</dd>
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
            <dd>
              {validator.revealed
                ? `the commit of epoch ${validator.revealed.epoch}, in epoch ${validator.revealed.epoch + 1}`
                : 'not yet (a commit is revealed in the next epoch, once its own is final)'}
            </dd>
            <dt>validator trust</dt>
            <dd>{mine ? u16(mine.validatorTrust) : '—'}</dd>
            <dt>dividends (last epoch)</dt>
            <dd>{mine ? `${u16(mine.dividends)} (${tao(mine.emission)} earned)` : '—'}</dd>
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
                  <th scope="col">checked in depth</th>
                  <th scope="col">proven wrong</th>
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
                    <td>{s.audited}</td>
                    <td>{s.penaltyLeft > 0 ? `${s.wrong} (zeroed ${s.penaltyLeft} more)` : s.wrong}</td>
                    <td title={s.lastProblem ?? undefined}>{s.last}</td>
                    <td>{s.latencyMs === null ? '—' : `${s.latencyMs.toFixed(0)} ms`}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {validator.scores.length > 0 && <Chart option={history} label="score history per miner" height={220} />}
        </section>
      )}
      {validator && (
        <section className="card" aria-labelledby="nominators-title">
          <h2 id="nominators-title">Nominators</h2>
          <p className="muted">
            People who staked on this validator: it keeps its take of the dividends and shares the rest by stake.
          </p>
          {nominators.length === 0 ? (
            <p className="muted">Nobody has nominated this validator yet.</p>
          ) : (
            <div className="table-wrap">
              <table data-testid="validator-nominators">
                <thead>
                  <tr>
                    <th scope="col">nominator</th>
                    <th scope="col">stake</th>
                    <th scope="col">paid (epochs held)</th>
                  </tr>
                </thead>
                <tbody>
                  {nominators.map((n) => (
                    <tr key={n.account}>
                      <td>
                        <code title={n.account}>{shortId(n.account)}</code>
                      </td>
                      <td title={rao(n.stake)}>{tao(n.stake, 9)}</td>
                      <td title={rao(n.paid)}>{tao(n.paid, 9)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      )}
    </>
  );
}
