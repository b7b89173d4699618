import { shortId, tao, u16Ratio, units } from '../format.ts';
import { useMemo, useState } from 'react';
import { Chart, type ChartOption } from '../charts/Chart.tsx';
import { Link } from 'react-router';
import { useStore, useTab } from '../shell/node-context.ts';
import { epochAgreement } from '../../../core/services/finality.ts';
import type { ClosedEpoch } from '../../../shared/ledger/replay.ts';

export interface MetagraphRow {
  uid: number;
  hotkey: string;
  role: string;
  /** Rao. */
  stake: bigint;
  validatorPermit: boolean;
  validatorTrust: number;
  consensus: number;
  incentive: number;
  dividends: number;
  /** Rao. */
  emission: bigint;
  lastUpdate: number;
  active: boolean;
  latencyMs: number | null;
  tokensPerSecond: number | null;
}

const columns: { key: keyof MetagraphRow; label: string; format?: (r: MetagraphRow) => string }[] = [
  { key: 'uid', label: 'uid' },
  { key: 'hotkey', label: 'hotkey', format: (r) => shortId(r.hotkey) },
  { key: 'role', label: 'role' },
  { key: 'stake', label: 'stake', format: (r) => tao(r.stake) },
  { key: 'validatorPermit', label: 'permit', format: (r) => (r.validatorPermit ? 'yes' : '') },
  { key: 'validatorTrust', label: 'vtrust', format: (r) => r.validatorTrust.toFixed(3) },
  { key: 'consensus', label: 'consensus', format: (r) => r.consensus.toFixed(3) },
  { key: 'incentive', label: 'incentive', format: (r) => r.incentive.toFixed(3) },
  { key: 'dividends', label: 'dividends', format: (r) => r.dividends.toFixed(3) },
  { key: 'emission', label: 'emission', format: (r) => tao(r.emission) },
  { key: 'lastUpdate', label: 'last update' },
  { key: 'active', label: 'active', format: (r) => (r.active ? 'yes' : 'no') },
  { key: 'latencyMs', label: 'latency', format: (r) => (r.latencyMs === null ? '—' : `${r.latencyMs.toFixed(0)} ms`) },
  {
    key: 'tokensPerSecond',
    label: 'tokens/s',
    format: (r) => (r.tokensPerSecond === null ? '—' : r.tokensPerSecond.toFixed(0)),
  },
];

/** Dashboard (`/dashboard`): the metagraph, charts over epochs, weights, peers, agreement and the ledger itself. */
export function DashboardPage() {
  const tab = useTab();
  const status = useStore(tab?.node.status, null);
  const services = useStore(tab?.node.services, null);
  const ledger = services?.ledger ?? null;
  const netuid = tab?.roles.subnet()?.netuid ?? 0;
  const snapshot = useStore(ledger?.consensus.snapshot, null);
  const records = useStore(ledger?.book.recent, []);
  const book = useStore(ledger?.book.state, null);

  const peers = useStore(services?.peers.peers, []);
  const validatorService = useStore(tab?.roles.validator, null);
  const validator = useStore(validatorService?.state, null);
  const [sortKey, setSortKey] = useState<keyof MetagraphRow>('uid');
  const [descending, setDescending] = useState(false);
  const [filter, setFilter] = useState('');

  // Every closed epoch of this subnet, from the latest replay (which runs from genesis).
  const epochs: ClosedEpoch[] = useMemo(
    () => (snapshot?.epochs ?? []).filter((e) => e.netuid === netuid).sort((a, b) => a.epoch - b.epoch),
    [snapshot, netuid],
  );
  const last = epochs.at(-1);
  const agreement = useMemo(() => epochAgreement(snapshot, netuid), [snapshot, netuid]);
  const rows: MetagraphRow[] = useMemo(() => {
    const sub = snapshot?.subnets.find((s) => s.netuid === netuid);
    if (!sub) return [];
    const rtt = new Map(peers.map((p) => [p.peerId, p.rttMs]));
    const scores = new Map((validator?.scores ?? []).map((s) => [s.hotkey, s]));
    return sub.uids.map((u, uid) => {
      const e = last?.uids[uid]?.hotkey === u.hotkey ? last.uids[uid] : undefined;
      const score = scores.get(u.hotkey);
      return {
        uid,
        hotkey: u.hotkey,
        role: u.role,
        stake: snapshot!.stakes[u.hotkey] ?? 0n,
        validatorPermit: e?.validatorPermit ?? false,
        validatorTrust: u16Ratio(e?.validatorTrust ?? 0),
        consensus: u16Ratio(e?.consensus ?? 0),
        incentive: u16Ratio(e?.incentive ?? 0),
        dividends: u16Ratio(e?.dividends ?? 0),
        emission: e ? BigInt(e.emission) : 0n,
        lastUpdate: u.lastUpdate,
        active: e?.active ?? true,
        latencyMs: rtt.get(u.hotkey) ?? null,
        tokensPerSecond: score?.latencyMs ? (16 * 1000) / score.latencyMs : null,
      };
    });
  }, [snapshot, netuid, last, peers, validator]);

  const shown = useMemo(() => {
    const f = filter.trim().toLowerCase();
    const kept = f ? rows.filter((r) => `${r.uid} ${r.hotkey} ${r.role}`.toLowerCase().includes(f)) : rows;
    return [...kept].sort((a, b) => {
      const x = a[sortKey] ?? -1;
      const y = b[sortKey] ?? -1;
      const c = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -c : c;
    });
  }, [rows, filter, sortKey, descending]);

  const uidsSeen = useMemo(
    () => [...new Set(epochs.flatMap((e) => e.uids.map((u) => u.uid)))].sort((a, b) => a - b),
    [epochs],
  );
  const perUid = (pick: (u: ClosedEpoch['uids'][number]) => number, name: string): ChartOption => ({
    grid: { left: 45, right: 10, top: 55, bottom: 30 },
    tooltip: { trigger: 'axis' },
    legend: { top: 0, type: 'scroll' },
    xAxis: { type: 'category', name: 'epoch', data: epochs.map((e) => e.epoch) },
    yAxis: { type: 'value', name, min: 0 },
    series: uidsSeen.map((uid) => ({
      type: 'line',
      name: `uid ${uid}`,
      showSymbol: false,
      data: epochs.map((e) => (e.uids[uid] ? pick(e.uids[uid]) : null)),
    })),
  });
  const incentiveOption = useMemo(() => perUid((u) => u16Ratio(u.incentive), 'incentive'), [epochs, uidsSeen]); // eslint-disable-line react-hooks/exhaustive-deps
  const dividendsOption = useMemo(() => perUid((u) => u16Ratio(u.dividends), 'dividends'), [epochs, uidsSeen]); // eslint-disable-line react-hooks/exhaustive-deps
  const stakeOption: ChartOption = useMemo(
    () => ({
      grid: { left: 60, right: 10, top: 30, bottom: 30 },
      tooltip: { trigger: 'axis' },
      xAxis: { type: 'category', name: 'epoch', data: epochs.map((e) => e.epoch) },
      yAxis: { type: 'value', name: 'total stake (τ)' },
      series: [
        {
          type: 'line',
          name: 'total stake (τ)',
          data: epochs.map((e) => units(e.uids.reduce((s, u) => s + BigInt(u.stake), 0n))),
        },
      ],
    }),
    [epochs],
  );
  const emissionOption: ChartOption = useMemo(
    () => ({
      grid: { left: 50, right: 10, top: 55, bottom: 30 },
      tooltip: { trigger: 'axis' },
      legend: { top: 0 },
      xAxis: { type: 'category', name: 'epoch', data: epochs.map((e) => e.epoch) },
      yAxis: { type: 'value', name: 'emission (τ)' },
      series: [
        { type: 'bar', stack: 'e', name: 'owner cut', data: epochs.map((e) => units(e.ownerCut)) },
        {
          type: 'bar',
          stack: 'e',
          name: 'miners and validators',
          data: epochs.map((e) => units((BigInt(e.paid) - BigInt(e.ownerCut)).toString())),
        },
        { type: 'bar', stack: 'e', name: 'dust', data: epochs.map((e) => units(e.dust)) },
      ],
    }),
    [epochs],
  );
  const heatmap: { option: ChartOption; cells: number } = useMemo(() => {
    const sub = snapshot?.subnets.find((s) => s.netuid === netuid);
    const validators = (sub?.weights ?? []).map((w, uid) => ({ uid, w })).filter((x) => x.w);
    const miners = [...new Set(validators.flatMap((v) => v.w!.uids))].sort((a, b) => a - b);
    const data = validators.flatMap((v, i) => v.w!.uids.map((m, k) => [miners.indexOf(m), i, v.w!.values[k]! / 65535]));
    return {
      cells: data.length,
      option: {
        grid: { left: 70, right: 10, top: 10, bottom: 60 },
        tooltip: {},
        xAxis: { type: 'category', name: 'miner', data: miners.map((m) => `uid ${m}`) },
        yAxis: { type: 'category', name: 'validator', data: validators.map((v) => `uid ${v.uid}`) },
        visualMap: { min: 0, max: 1, calculable: true, orient: 'horizontal', left: 'center', bottom: 0 },
        series: [
          {
            type: 'heatmap',
            data,
            label: { show: true, formatter: (p: { value: number[] }) => p.value[2]!.toFixed(2) },
          },
        ],
      },
    };
  }, [snapshot, netuid]);
  const peerGraph: ChartOption = useMemo(() => {
    const self = services?.peerId ?? 'this tab';
    return {
      tooltip: {},
      series: [
        {
          type: 'graph',
          layout: 'force',
          // No roam: its view transform can become singular while the box resizes, and ECharts then throws.
          label: { show: true, position: 'right', fontSize: 11 },
          force: { repulsion: 260, edgeLength: 110 },
          data: [
            { name: 'this tab', symbolSize: 28, value: self },
            { name: 'relay', symbolSize: 18, value: 'signalling only' },
            ...peers.map((p) => ({ name: shortId(p.peerId), symbolSize: 20, value: p.peerId })),
          ],
          links: [
            { source: 'this tab', target: 'relay', lineStyle: { type: 'dashed' } },
            ...peers.map((p) => ({
              source: 'this tab',
              target: shortId(p.peerId),
              lineStyle: { type: p.direct ? 'solid' : 'dashed', width: p.direct ? 2 : 1 },
            })),
          ],
        },
      ],
    };
  }, [services?.peerId, peers]);

  if (!tab || !status) return null;
  const refused = snapshot?.refused ?? {};

  return (
    <>
      <section className="hero" aria-labelledby="dash-title">
        <h1 id="dash-title">Dashboard</h1>
        <p className="lead">
          The network as this tab replays it: every UID, how the epochs went, who weights whom, who this tab is
          connected to, whether the tabs agree, and the signed records everything is computed from.
        </p>
        {status.status === 'starting' && <p className="muted">Joining the network to watch it…</p>}
        {status.error && (
          <p role="alert" className="error">
            {status.error}
          </p>
        )}
      </section>
      {!ledger && status.status === 'running' && (
        <p className="card muted">This relay serves no network config, so there is no ledger to show.</p>
      )}
      {ledger && (
        <>
          <section className="card" aria-labelledby="metagraph-title">
            <h2 id="metagraph-title">Metagraph, subnet {netuid}</h2>
            <div className="row">
              <label htmlFor="metagraph-filter">Filter</label>
              <input
                id="metagraph-filter"
                value={filter}
                onChange={(e) => setFilter(e.target.value)}
                placeholder="uid, hotkey or role"
              />
            </div>
            <div className="table-wrap">
              <table data-testid="metagraph">
                <thead>
                  <tr>
                    {columns.map((c) => (
                      <th
                        key={c.key}
                        scope="col"
                        aria-sort={sortKey === c.key ? (descending ? 'descending' : 'ascending') : 'none'}
                      >
                        <button
                          type="button"
                          className="link"
                          onClick={() => {
                            if (sortKey === c.key) setDescending(!descending);
                            else {
                              setSortKey(c.key);
                              setDescending(false);
                            }
                          }}
                        >
                          {c.label}
                          {sortKey === c.key ? (descending ? ' ▾' : ' ▴') : ''}
                        </button>
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {shown.map((r) => (
                    <tr key={r.uid} data-uid={r.uid}>
                      {columns.map((c) => (
                        <td key={c.key} data-col={c.key}>
                          {c.format ? c.format(r) : String(r[c.key])}
                        </td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {rows.length === 0 && <p className="muted">No UIDs registered yet.</p>}
          </section>

          <section className="card" aria-labelledby="charts-title">
            <h2 id="charts-title">Over epochs</h2>
            {epochs.length === 0 ? (
              <p className="muted">
                No epoch has closed yet; the first one closes at block {tab.roles.subnet()?.tempo}.
              </p>
            ) : (
              <div className="chart-grid" data-epochs={epochs.length}>
                <div>
                  <h3>Incentive per UID</h3>
                  <Chart option={incentiveOption} label="incentive per UID" />
                </div>
                <div>
                  <h3>Dividends per UID</h3>
                  <Chart option={dividendsOption} label="dividends per UID" />
                </div>
                <div>
                  <h3>Total stake</h3>
                  <Chart option={stakeOption} label="total stake" />
                </div>
                <div>
                  <h3>Emission</h3>
                  <Chart option={emissionOption} label="emission per epoch" />
                </div>
              </div>
            )}
          </section>

          <section className="card" aria-labelledby="weights-title">
            <h2 id="weights-title">Weights (validators × miners)</h2>
            {heatmap.cells === 0 ? (
              <p className="muted">No weights revealed yet.</p>
            ) : (
              <Chart option={heatmap.option} label="weights heatmap" height={240} />
            )}
          </section>

          <section className="card" aria-labelledby="peers-title">
            <h2 id="peers-title">Connections of this tab</h2>
            <p className="muted">Solid: direct WebRTC. Dashed: through the relay, which only signals.</p>
            <Chart option={peerGraph} label="peer graph" height={280} />
          </section>

          <section className="card" aria-labelledby="agreement-title">
            <h2 id="agreement-title">Epoch agreement</h2>
            <div className="table-wrap">
              <table data-testid="agreement">
                <thead>
                  <tr>
                    <th scope="col">epoch</th>
                    <th scope="col">records root</th>
                    <th scope="col">state root</th>
                    <th scope="col">stake agreeing</th>
                    <th scope="col">others</th>
                  </tr>
                </thead>
                <tbody>
                  {agreement
                    .slice(-10)
                    .reverse()
                    .map((a) => (
                      <tr key={a.epoch}>
                        <td>{a.epoch}</td>
                        <td>
                          <code>{a.recordsRoot.slice(0, 10)}…</code>
                        </td>
                        <td>
                          <code>{a.stateRoot.slice(0, 10)}…</code>
                        </td>
                        <td>
                          {a.joined
                            ? 'final (joined)'
                            : BigInt(a.permittedStake) > 0n
                              ? `${((100 * units(a.agreeingStake)) / units(a.permittedStake)).toFixed(0)} %`
                              : '—'}
                        </td>
                        <td>{a.disagreeing > 0 ? `${a.disagreeing} disagree` : ''}</td>
                      </tr>
                    ))}
                </tbody>
              </table>
            </div>
          </section>

          <section className="card" aria-labelledby="explorer-title">
            <h2 id="explorer-title">Ledger explorer</h2>
            <p className="muted">
              {book?.records ?? 0} records held; the newest {records.length} below.{' '}
              {Object.keys(refused).length > 0 && `${Object.keys(refused).length} refused on replay.`}
            </p>
            <div className="table-wrap">
              <table data-testid="records">
                <thead>
                  <tr>
                    <th scope="col">kind</th>
                    <th scope="col">author</th>
                    <th scope="col">block</th>
                    <th scope="col">validity</th>
                    <th scope="col">from</th>
                  </tr>
                </thead>
                <tbody>
                  {records.map((r) => (
                    <tr key={r.id}>
                      <td>{r.kind}</td>
                      <td>
                        <code title={r.author}>{shortId(r.author)}</code>
                      </td>
                      <td>{r.block}</td>
                      <td>{refused[r.id] ? `refused: ${refused[r.id]!.code}` : 'valid'}</td>
                      <td>{r.source.split(':')[0]}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>
        </>
      )}
      <p className="muted">
        To see how Yuma turns weights into incentive and dividends on a case of your own, open the{' '}
        <Link to="/lab">Consensus lab</Link>.
      </p>
    </>
  );
}
