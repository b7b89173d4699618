import { rao, tao, units } from './format.ts';
import { useMemo } from 'react';
import { Chart, type ChartOption } from './charts/Chart.tsx';
import { useStore, type TabNode } from './shell/node-context.ts';
import { epochAgreement } from '../../core/services/finality.ts';
import { registrationPrice } from '../../core/services/registration.ts';

/** This tab in the network's economy: registration (proof of work), UID, stake, epochs and agreement. */
export function LedgerPanel({ tab }: { tab: TabNode }) {
  const services = useStore(tab.node.services, null);
  const ledger = services?.ledger ?? null;
  const snapshot = useStore(ledger?.consensus.snapshot, null);
  const block = useStore(ledger?.consensus.block, 0);
  const book = useStore(ledger?.book.state, { records: 0, refused: 0, lastRefused: null, error: null });
  const replayError = useStore(ledger?.consensus.error, null);
  const reg = useStore(ledger?.registration.state, null);
  const agreement = epochAgreement(snapshot, tab.roles.subnet()?.netuid ?? 1);
  const me = services?.peerId ?? null;
  const stake = me ? (snapshot?.stakes[me] ?? 0n) : 0n;
  const netuid = tab.roles.subnet()?.netuid ?? 1;
  const price = registrationPrice(snapshot, netuid);
  const hashingPercent = reg && reg.expected > 0 ? Math.min(99, Math.round((100 * reg.hashes) / reg.expected)) : 0;
  const recent = agreement.slice(-5).reverse();
  const earnings = useMemo(() => {
    return (snapshot?.epochs ?? [])
      .map((e) => ({ epoch: e.epoch, rao: e.uids.find((u) => u.hotkey === me)?.emission }))
      .filter((e): e is { epoch: number; rao: string } => e.rao !== undefined)
      .slice(-30);
  }, [snapshot, me]);
  const earningsOption: ChartOption = useMemo(
    () => ({
      grid: { left: 50, right: 10, top: 20, bottom: 30 },
      tooltip: { trigger: 'axis' },
      xAxis: { type: 'category', name: 'epoch', data: earnings.map((e) => e.epoch) },
      yAxis: { type: 'value', name: 'earned (τ)' },
      series: [{ type: 'bar', name: 'earned (τ)', data: earnings.map((e) => units(e.rao)) }],
    }),
    [earnings],
  );
  if (!ledger) return null;

  return (
    <section className="card" aria-labelledby="ledger-title">
      <h2 id="ledger-title">Network economy</h2>
      {(book.error ?? replayError) && (
        <p role="alert" className="error">
          {book.error ?? replayError}
        </p>
      )}
      <dl className="facts" data-testid="ledger">
        <dt>network</dt>
        <dd>
          {ledger.network.networkId} ({ledger.network.profile}, {ledger.network.blockMs / 1000} s blocks, epochs of{' '}
          {ledger.network.subnets[0]!.tempo} blocks)
        </dd>
        <dt>block</dt>
        <dd>{block}</dd>
        <dt>registration</dt>
        <dd>
          {!reg && 'not registered (only miners and validators register)'}
          {reg?.phase === 'hashing' && (
            <>
              proof of work: {reg.hashes.toLocaleString()} hashes (about {reg.expected.toLocaleString()} expected){' '}
              <progress max={100} value={hashingPercent} aria-label="proof of work progress" />
            </>
          )}
          {reg?.phase === 'published' && 'registration sent; waiting for the ledger to include it'}
          {reg?.phase === 'registered' && `UID ${reg.uid} on subnet ${reg.netuid}`}
          {reg?.phase === 'error' && (
            <span className="error">
              {reg.error}
              {reg.retrying && ' (trying again shortly)'}
            </span>
          )}
        </dd>
        <dt>registration price</dt>
        <dd data-testid="registration-price">
          {price
            ? `${tao(price.burn)} burnt and a ${price.difficulty}-bit proof of work on subnet ${netuid} (set at each epoch's close by demand)`
            : 'known after the first replay'}
        </dd>
        <dt>stake</dt>
        <dd title={rao(stake)}>{tao(stake)}</dd>
        <dt>records held</dt>
        <dd
          title={book.lastRefused ? `last refused (${book.lastRefused.via}): ${book.lastRefused.message}` : undefined}
        >
          {book.records}
          {book.refused > 0 && ` (${book.refused} refused)`}
        </dd>
      </dl>
      {earnings.length > 0 && (
        <>
          <h3>Earnings per epoch</h3>
          <Chart option={earningsOption} label="earnings per epoch" height={180} />
        </>
      )}
      {recent.length > 0 && (
        <>
          <h3>Closed epochs</h3>
          <table>
            <thead>
              <tr>
                <th scope="col">epoch</th>
                <th scope="col">state root</th>
                <th scope="col">validator stake agreeing</th>
              </tr>
            </thead>
            <tbody>
              {recent.map((e) => (
                <tr key={e.epoch}>
                  <td>{e.epoch}</td>
                  <td>
                    <code>{e.stateRoot.slice(0, 12)}…</code>
                  </td>
                  <td>
                    {e.joined
                      ? 'final (this tab joined from a later checkpoint)'
                      : BigInt(e.permittedStake) > 0n
                        ? `${tao(e.agreeingStake)} of ${tao(e.permittedStake)}`
                        : 'no validators yet'}
                    {e.disagreeing > 0 && ` (${e.disagreeing} disagree)`}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
