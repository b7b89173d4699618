import { useEffect, useMemo, useState } from 'react';
import type { ValidatorRow, Wallet, WalletAction, WalletRecord } from '../../../core/services/wallet.ts';
import { Chart, type ChartOption } from '../charts/Chart.tsx';
import { rao, shortId, tao, u16Ratio, units } from '../format.ts';
import { useStore, useTab } from '../shell/node-context.ts';

/** A pending action waiting for the person to confirm it: what it will sign, and how. */
interface Confirm {
  what: string;
  run: () => Promise<unknown>;
}

/**
 * Wallet (`/wallet`): this tab's key: free balance and stakes (exact, in τ), earnings per epoch, every record it
 * signed and where it stands, sending τ, nominating validators, and test τ from the faucet on a test network.
 * Every action is checked by the wallet service before anything is signed, and confirmed here first.
 */
export function WalletPage() {
  const tab = useTab();
  const status = useStore(tab?.node.status, null);
  const services = useStore(tab?.node.services, null);
  const ledger = services?.ledger ?? null;
  const snapshot = useStore(ledger?.consensus.snapshot, null);
  const [history, setHistory] = useState<WalletRecord[]>([]);
  const [to, setTo] = useState('');
  const [amount, setAmount] = useState('');
  const [faucetAmount, setFaucetAmount] = useState('100');
  const [stakeOn, setStakeOn] = useState<string | null>(null);
  const [stakeAmount, setStakeAmount] = useState('');
  const [confirm, setConfirm] = useState<Confirm | null>(null);
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);

  // A wallet needs the network: this page joins as a client when the tab has not started yet.
  useEffect(() => {
    if (tab && tab.node.status.get().status === 'idle') void tab.node.start().catch(() => {});
  }, [tab]);
  // The history follows every replay (a record becomes final or refused there).
  useEffect(() => {
    if (!ledger) return;
    let live = true;
    void ledger.wallet.history().then((h) => live && setHistory(h));
    return () => {
      live = false;
    };
  }, [ledger, snapshot]);

  const wallet = ledger?.wallet ?? null;
  const earnings = useMemo(() => (snapshot && wallet ? wallet.earnings() : []), [snapshot, wallet]);
  const validators: ValidatorRow[] = useMemo(() => (snapshot && wallet ? wallet.validators() : []), [snapshot, wallet]);
  const chart: ChartOption = useMemo(
    () => ({
      grid: { left: 50, right: 10, top: 30, bottom: 30 },
      tooltip: { trigger: 'axis' },
      legend: { top: 0 },
      xAxis: { type: 'category', name: 'epoch', data: earnings.map((e) => e.epoch) },
      yAxis: { type: 'value', name: 'τ' },
      series: [
        { type: 'bar', name: 'as a nominator', stack: 'earned', data: earnings.map((e) => units(e.nominated)) },
        { type: 'bar', name: 'own UIDs', stack: 'earned', data: earnings.map((e) => units(e.own)) },
      ],
    }),
    [earnings],
  );
  if (!tab || !status) return null;

  /** Check now with the wallet's own checks (nothing is signed), then ask to confirm. */
  const ask = (w: Wallet, action: WalletAction, target: string, amountText: string, what: string) => {
    setMessage(null);
    try {
      w.prepare(action, target, amountText);
    } catch (err) {
      setMessage({ error: true, text: (err as Error).message });
      return;
    }
    const run = {
      transfer: () => w.transfer(target, amountText),
      stake: () => w.stake(target, amountText),
      unstake: () => w.unstake(target, amountText),
      faucet: () => w.faucet(amountText),
    }[action];
    setConfirm({ what, run });
  };
  const go = async () => {
    const c = confirm;
    setConfirm(null);
    if (!c) return;
    try {
      await c.run();
      setMessage({ error: false, text: `Signed and sent: ${c.what}. It counts once the next replay takes it.` });
    } catch (err) {
      setMessage({ error: true, text: (err as Error).message });
    }
  };

  const stakes = wallet?.stakes() ?? [];
  const network = ledger?.network ?? null;
  return (
    <>
      <section className="hero" aria-labelledby="wallet-title">
        <h1 id="wallet-title">Wallet</h1>
        <p className="lead">
          This tab&apos;s key holds τ: send it, or stake it on a validator to share its dividends (nominating). What is
          shown comes from this tab&apos;s own replay of the ledger; an epoch is final once validators holding over two
          thirds of the stake signed it.
        </p>
      </section>
      {(status.error ?? (!ledger && status.status === 'running' ? 'This relay serves no network.' : null)) && (
        <p role="alert" className="error card">
          {status.error ?? 'This relay serves no network.'}
        </p>
      )}
      {message && (
        <p
          role={message.error ? 'alert' : 'status'}
          className={message.error ? 'error card' : 'card'}
          data-testid="wallet-message"
        >
          {message.text}
        </p>
      )}
      {confirm && (
        <section className="card" aria-labelledby="confirm-title" data-testid="wallet-confirm">
          <h2 id="confirm-title">Confirm</h2>
          <p>{confirm.what}?</p>
          <div className="row">
            <button type="button" onClick={() => void go()}>
              Confirm and sign
            </button>
            <button type="button" className="secondary" onClick={() => setConfirm(null)}>
              Cancel
            </button>
          </div>
        </section>
      )}
      <section className="card" aria-labelledby="holdings-title">
        <h2 id="holdings-title">Holdings</h2>
        {!wallet && <p className="muted">Joining the network…</p>}
        {wallet && (
          <dl className="facts" data-testid="wallet-holdings">
            <dt>key</dt>
            <dd>
              <code data-testid="wallet-key">{wallet.self}</code>
            </dd>
            <dt>free balance</dt>
            <dd title={rao(wallet.balance())} data-testid="wallet-balance">
              {tao(wallet.balance(), 9)}
            </dd>
            <dt>staked</dt>
            <dd>
              {stakes.length === 0
                ? 'nothing'
                : stakes.map((s) => (
                    <div key={s.hotkey} title={rao(s.amount)}>
                      {tao(s.amount, 9)} on <code title={s.hotkey}>{shortId(s.hotkey)}</code>
                    </div>
                  ))}
            </dd>
          </dl>
        )}
        {wallet && network?.faucet && (
          <form
            className="row"
            onSubmit={(e) => {
              e.preventDefault();
              ask(wallet, 'faucet', '', faucetAmount, `Draw ${faucetAmount.trim()} test τ from the faucet`);
            }}
          >
            <label>
              Test τ{' '}
              <input
                aria-label="test τ to draw"
                value={faucetAmount}
                onChange={(e) => setFaucetAmount(e.target.value)}
                inputMode="decimal"
              />
            </label>
            <button type="submit">Get test τ</button>
            <span className="muted">This is a test network: its faucet gives τ to anyone.</span>
          </form>
        )}
      </section>
      {wallet && (
        <section className="card" aria-labelledby="send-title">
          <h2 id="send-title">Send τ</h2>
          <form
            className="row"
            onSubmit={(e) => {
              e.preventDefault();
              ask(wallet, 'transfer', to, amount, `Send ${amount.trim()} τ to ${to.trim()}`);
            }}
          >
            <label>
              To <input aria-label="recipient peer id" value={to} onChange={(e) => setTo(e.target.value)} size={54} />
            </label>
            <label>
              Amount (τ){' '}
              <input
                aria-label="amount to send"
                value={amount}
                onChange={(e) => setAmount(e.target.value)}
                inputMode="decimal"
              />
            </label>
            <button type="submit">Send…</button>
          </form>
        </section>
      )}
      {wallet && (
        <section className="card" aria-labelledby="nominate-title">
          <h2 id="nominate-title">Nominate a validator</h2>
          <p className="muted">
            A validator keeps its take ({((validators[0]?.take ?? 0) / 655.35).toFixed(0)} %) of its dividends and
            shares the rest among everyone staked on it, by stake. The return is an <strong>estimate</strong> from the
            last final epochs: what its nominators were paid per τ staked, per epoch.
          </p>
          <div className="table-wrap">
            <table data-testid="wallet-validators">
              <thead>
                <tr>
                  <th scope="col">validator</th>
                  <th scope="col">stake</th>
                  <th scope="col">trust</th>
                  <th scope="col">nominators</th>
                  <th scope="col">dividends</th>
                  <th scope="col">return ≈</th>
                  <th scope="col">yours</th>
                  <th scope="col">
                    <span className="visually-hidden">actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {validators.map((v) => {
                  const mine = stakes.find((s) => s.hotkey === v.hotkey)?.amount ?? 0n;
                  const recent = v.dividends.reduce((s, d) => s + d.rao, 0n);
                  return (
                    <tr key={`${v.netuid}-${v.uid}`} data-hotkey={v.hotkey}>
                      <td>
                        uid {v.uid} <code title={v.hotkey}>{shortId(v.hotkey)}</code>
                        {!v.validatorPermit && <span className="muted"> (no permit)</span>}
                      </td>
                      <td title={rao(v.stake)}>{tao(v.stake, 2)}</td>
                      <td>{u16Ratio(v.validatorTrust).toFixed(3)}</td>
                      <td>{v.nominators.length}</td>
                      <td title={`${rao(recent)} over the last ${v.dividends.length} final epochs`}>
                        {tao(recent, 2)} / {v.dividends.length} ep.
                      </td>
                      <td title="an estimate from final epochs: paid to nominators per τ staked, per epoch">
                        {v.estimatedRaoPerTaoPerEpoch === null
                          ? '—'
                          : `${((v.estimatedRaoPerTaoPerEpoch / 1e9) * 100).toPrecision(3)} %/epoch`}
                      </td>
                      <td title={rao(mine)}>{mine > 0n ? tao(mine, 4) : '—'}</td>
                      <td>
                        <button type="button" className="secondary small" onClick={() => setStakeOn(v.hotkey)}>
                          Stake…
                        </button>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          {validators.length === 0 && <p className="muted">No validator is registered yet.</p>}
          {stakeOn && (
            <form
              className="row"
              aria-label="stake form"
              onSubmit={(e) => e.preventDefault()}
              data-testid="wallet-stake-form"
            >
              <span>
                On <code title={stakeOn}>{shortId(stakeOn)}</code>
              </span>
              <label>
                Amount (τ){' '}
                <input
                  aria-label="amount to stake or unstake"
                  value={stakeAmount}
                  onChange={(e) => setStakeAmount(e.target.value)}
                  inputMode="decimal"
                />
              </label>
              <button
                type="button"
                onClick={() =>
                  ask(wallet, 'stake', stakeOn, stakeAmount, `Stake ${stakeAmount.trim()} τ on ${stakeOn}`)
                }
              >
                Stake…
              </button>
              <button
                type="button"
                className="secondary"
                onClick={() =>
                  ask(wallet, 'unstake', stakeOn, stakeAmount, `Unstake ${stakeAmount.trim()} τ from ${stakeOn}`)
                }
              >
                Unstake…
              </button>
            </form>
          )}
        </section>
      )}
      {wallet && earnings.length > 0 && (
        <section className="card" aria-labelledby="earnings-title">
          <h2 id="earnings-title">Earnings per epoch</h2>
          <Chart option={chart} label="earnings per epoch" height={220} />
        </section>
      )}
      {wallet && (
        <section className="card" aria-labelledby="history-title">
          <h2 id="history-title">Records this key signed</h2>
          <div className="table-wrap">
            <table data-testid="wallet-history">
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">kind</th>
                  <th scope="col">block</th>
                  <th scope="col">what</th>
                  <th scope="col">state</th>
                </tr>
              </thead>
              <tbody>
                {history.map((r) => (
                  <tr key={r.id} data-status={r.status}>
                    <td>{r.seq}</td>
                    <td>{r.kind}</td>
                    <td>{r.block}</td>
                    <td>{describe(r)}</td>
                    <td>{r.status === 'refused' ? `refused: ${r.reason!.code} (${r.reason!.message})` : r.status}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {history.length === 0 && <p className="muted">Nothing signed yet.</p>}
        </section>
      )}
    </>
  );
}

/** A record's body in words. */
function describe(r: WalletRecord): string {
  const b = r.body as Record<string, unknown>;
  const amount = typeof b['amount'] === 'string' ? tao(b['amount'], 9) : '';
  switch (r.kind) {
    case 'transfer':
      return `${amount} to ${shortId(String(b['to']))}`;
    case 'stake.add':
      return `${amount} staked on ${shortId(String(b['hotkey']))}`;
    case 'stake.remove':
      return `${amount} unstaked from ${shortId(String(b['hotkey']))}`;
    case 'faucet.claim':
      return `${amount} from the faucet`;
    case 'register':
      return `registered on subnet ${String(b['netuid'])} as a ${String(b['role'])}`;
    default:
      return '';
  }
}
