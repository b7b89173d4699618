import { useEffect, useMemo, useState } from 'react';
import type { JobClient, JobOutputLine, JobStatus } from '../../../core/services/job-client.ts';
import { JobFileError, type JobLine } from '../../../shared/inference/job-files.ts';
import { AmountError, parseTao } from '../../../shared/ledger/amounts.ts';
import { epochBlocks } from '../../../shared/ledger/config.ts';
import { MAX_JOB_EPOCHS, PENALTY_MULTIPLE } from '../../../shared/ledger/jobs.ts';
import { MAX_JOB_SHARDS } from '../../../shared/ledger/records.ts';
import { rao, shortId, tao } from '../format.ts';
import { checkRequests, jobHistory, jobRequests, type JobHistory, type ShardEvents } from '../jobs-view.ts';
import { useStore, useTab } from '../shell/node-context.ts';

/** What the faucet helper draws, in τ. */
const FAUCET_TAO = '100';
/** Files larger than this are refused before they are read (a job file must fit in one blob anyway). */
const MAX_READ_BYTES = 64 * 1024 * 1024;

type ShardStatus = JobStatus['shards'][number]['status'];

/** A shard's state in words and as a step of its life (open 0 → claimed 1 → results 2 → paid 3; refunded ends). */
const SHARD_STEPS: Record<ShardStatus, { step: number; label: string }> = {
  open: { step: 0, label: 'open' },
  claimed: { step: 1, label: 'claimed' },
  result: { step: 2, label: 'results in' },
  paid: { step: 3, label: 'paid' },
  refunded: { step: 3, label: 'refunded' },
};

interface Preview {
  lines: JobLine[] | null;
  problem: string | null;
  price: bigint | null;
}

/**
 * Jobs (`/jobs`): batch jobs paid from a deposit (docs/jobs.md). Upload a request file, see what it will cost and
 * open it; follow this key's jobs shard by shard (who took each, whether its audit passed), cancel one, and
 * download a closed job's output. Every check is the job client's, made before anything is signed.
 */
export function JobsPage() {
  const tab = useTab();
  const status = useStore(tab?.node.status, null);
  const services = useStore(tab?.node.services, null);
  const ledger = services?.ledger ?? null;
  const client = services?.jobs?.client ?? null;
  const snapshot = useStore(ledger?.consensus.snapshot, null);
  const block = useStore(ledger?.consensus.block, null);
  const { jobs } = useStore(client?.state, { jobs: [] });
  const history = useStore(client ? jobHistory(client) : null, {});
  const [file, setFile] = useState<{ name: string; text: string } | null>(null);
  const [fileKey, setFileKey] = useState(0);
  const [netuid, setNetuid] = useState<number | null>(null);
  const [priceText, setPriceText] = useState('0.01');
  const [deadline, setDeadline] = useState(6);
  const [shards, setShards] = useState(3);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);

  // Jobs need the network: this page joins as a client when the tab has not started yet.
  useEffect(() => {
    if (tab && tab.node.status.get().status === 'idle') void tab.node.start().catch(() => {});
  }, [tab]);

  const network = ledger?.network ?? null;
  const subnets = network?.subnets ?? [];
  const subnet = subnets.find((s) => s.netuid === netuid) ?? tab?.roles.subnet() ?? subnets[0] ?? null;
  const preview: Preview = useMemo(() => {
    let price: bigint | null = null;
    let priceProblem: string | null = null;
    try {
      price = parseTao(priceText);
    } catch (err) {
      if (!(err instanceof AmountError)) throw err;
      priceProblem = `The price per request: ${err.message}`;
    }
    if (!file || !subnet) return { lines: null, problem: priceProblem, price };
    try {
      return { lines: checkRequests(file.text, subnet.model), problem: priceProblem, price };
    } catch (err) {
      if (!(err instanceof JobFileError)) throw err;
      return { lines: null, problem: `The job's requests are not valid: ${err.message}.`, price };
    }
  }, [file, subnet, priceText]);

  if (!tab || !status) return null;
  const wallet = ledger?.wallet ?? null;
  // Read on every render: the page re-renders with each replay (snapshot) and each job change.
  const spendable = snapshot && wallet ? wallet.spendable() : null;
  const requests = preview.lines?.length ?? null;
  const deposit = requests !== null && preview.price !== null ? preview.price * BigInt(requests) : null;
  const maxTokens = preview.lines ? Math.max(...preview.lines.map((l) => l.params.maxNewTokens)) : null;
  const tempo = network ? epochBlocks(network) : null;
  const short = spendable !== null && (spendable === 0n || (deposit !== null && deposit > spendable));

  const open = async () => {
    if (!client || !file || !subnet) return;
    setMessage(null);
    setBusy(true);
    try {
      let price: bigint;
      try {
        price = parseTao(priceText);
      } catch (err) {
        throw new Error(`The price per request: ${(err as Error).message}`, { cause: err });
      }
      let lines: string | unknown[];
      try {
        lines = jobRequests(file.text, subnet.model);
      } catch (err) {
        throw new Error(`The job's requests are not valid: ${(err as Error).message}.`, { cause: err });
      }
      const id = await client.open({ netuid: subnet.netuid, lines, price, deadlineEpochs: deadline, shards });
      setMessage({
        error: false,
        text: `Signed and sent: job ${shortId(id)}. It opens once the next replay takes it.`,
      });
      setFile(null);
      setFileKey((k) => k + 1);
    } catch (err) {
      setMessage({ error: true, text: (err as Error).message });
    } finally {
      setBusy(false);
    }
  };
  const faucet = async () => {
    if (!wallet) return;
    setMessage(null);
    try {
      await wallet.faucet(FAUCET_TAO);
      setMessage({ error: false, text: `Signed and sent: ${FAUCET_TAO} test τ from the faucet.` });
    } catch (err) {
      setMessage({ error: true, text: (err as Error).message });
    }
  };
  const readFile = async (f: File | undefined) => {
    setMessage(null);
    if (!f) return setFile(null);
    if (f.size > MAX_READ_BYTES) {
      setFile(null);
      setMessage({
        error: true,
        text: `${f.name} is ${(f.size / 2 ** 20).toFixed(0)} MiB; a job file is far smaller.`,
      });
      return;
    }
    setFile({ name: f.name, text: await f.text() });
  };

  return (
    <>
      <section className="hero" aria-labelledby="jobs-title">
        <h1 id="jobs-title">Jobs</h1>
        <p className="lead">
          A job is many requests paid from one deposit. Miners take it in shards, each staking a bond of twice the
          shard&apos;s pay; a validator checks every shard&apos;s answers before the miner is paid, and whatever no
          miner earns comes back to you.
        </p>
      </section>
      {(status.error ?? (!ledger && status.status === 'running' ? 'This relay serves no network.' : null)) && (
        <p role="alert" className="error card">
          {status.error ?? 'This relay serves no network.'}
        </p>
      )}
      {ledger && !client && status.status === 'running' && (
        <p role="alert" className="error card">
          This tab keeps no files (no blob store), so it cannot open jobs.
        </p>
      )}
      <section className="card" aria-labelledby="new-job-title">
        <h2 id="new-job-title">New job</h2>
        <p className="muted">
          A JSONL file, one request per line:{' '}
          <code>{'{"custom_id": "…", "params": {"model", "prompt", "maxNewTokens"}}'}</code> (docs/jobs.md), or OpenAI
          batch lines for <code>/v1/completions</code> (<code>prompt</code>, <code>max_tokens</code>,{' '}
          <code>temperature</code>, <code>seed</code>), compiled into that form.
        </p>
        <form
          className="job-form"
          onSubmit={(e) => {
            e.preventDefault();
            void open();
          }}
        >
          <div className="row">
            <label>
              Request file{' '}
              <input
                key={fileKey}
                type="file"
                accept=".jsonl,.json,.txt,application/jsonl,application/x-ndjson,text/plain"
                aria-label="request file"
                data-testid="job-file"
                onChange={(e) => void readFile(e.target.files?.[0])}
              />
            </label>
          </div>
          <div className="row">
            <label>
              Subnet{' '}
              <select
                aria-label="subnet"
                value={subnet?.netuid ?? ''}
                onChange={(e) => setNetuid(Number(e.target.value))}
              >
                {subnets.map((s) => (
                  <option key={s.netuid} value={s.netuid}>
                    {s.netuid}: {s.model}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Price per request (τ){' '}
              <input
                aria-label="price per request"
                value={priceText}
                onChange={(e) => setPriceText(e.target.value)}
                inputMode="decimal"
                size={10}
              />
            </label>
            <label>
              Deadline (epochs){' '}
              <input
                type="number"
                aria-label="deadline in epochs"
                min={1}
                max={MAX_JOB_EPOCHS}
                value={deadline}
                onChange={(e) => setDeadline(Number(e.target.value))}
              />
            </label>
            <label>
              Shards{' '}
              <input
                type="number"
                aria-label="shards"
                min={1}
                max={MAX_JOB_SHARDS}
                value={shards}
                onChange={(e) => setShards(Number(e.target.value))}
              />
            </label>
          </div>
          <dl className="facts job-preview" data-testid="job-preview">
            <dt>requests</dt>
            <dd data-testid="job-requests">
              {requests === null ? '—' : `${requests}${file ? ` (${file.name})` : ''}`}
              {maxTokens !== null && <span className="muted">, up to {maxTokens} tokens each</span>}
            </dd>
            <dt>shards</dt>
            <dd>
              {requests !== null && shards >= 1 && shards <= requests
                ? shardSizes(requests, shards)
                : `${shards}${requests !== null ? ` (a job of ${requests} requests has 1 to ${Math.min(requests, MAX_JOB_SHARDS)})` : ''}`}
            </dd>
            <dt>price</dt>
            <dd data-testid="job-price" title={preview.price !== null ? rao(preview.price) : undefined}>
              {preview.price !== null ? `${tao(preview.price, 9)} per request` : '—'}
            </dd>
            <dt>deposit</dt>
            <dd data-testid="job-deposit" title={deposit !== null ? rao(deposit) : undefined}>
              {deposit !== null ? `${tao(deposit, 9)}` : '—'}
              {deposit !== null && requests !== null && shards >= 1 && shards <= requests && (
                <span className="muted">
                  {' '}
                  (price × {requests}; a miner bonds{' '}
                  {tao(PENALTY_MULTIPLE * preview.price! * BigInt(Math.ceil(requests / shards)), 9)} per shard at most)
                </span>
              )}
            </dd>
            <dt>you can spend</dt>
            <dd data-testid="job-spendable" title={spendable !== null ? rao(spendable) : undefined}>
              {spendable === null ? 'joining the network…' : tao(spendable, 9)}
              {deposit !== null && spendable !== null && deposit > spendable && (
                <span className="error"> — not enough for the deposit</span>
              )}
            </dd>
            <dt>deadline</dt>
            <dd>
              {tempo !== null && network
                ? `${deadline} epochs: ${deadline * tempo} blocks (${duration(deadline * tempo * network.blockMs)}); results are audited for one more epoch`
                : `${deadline} epochs`}
            </dd>
          </dl>
          {preview.problem && (
            <p role="alert" className="error" data-testid="job-problem">
              {preview.problem}
            </p>
          )}
          <div className="row">
            <button type="submit" disabled={busy || !client || !file || !subnet}>
              {busy ? 'Opening…' : 'Open job'}
            </button>
            {wallet && network?.faucet && short && (
              <>
                <button type="button" className="secondary" onClick={() => void faucet()}>
                  Get {FAUCET_TAO} test τ
                </button>
                <span className="muted">This is a test network: its faucet gives τ to anyone.</span>
              </>
            )}
          </div>
        </form>
      </section>
      {message && (
        <p
          role={message.error ? 'alert' : 'status'}
          className={message.error ? 'error card' : 'card'}
          data-testid="jobs-message"
        >
          {message.text}
        </p>
      )}
      <section className="card" aria-labelledby="your-jobs-title">
        <h2 id="your-jobs-title">Your jobs</h2>
        {jobs.length === 0 && <p className="muted">This key has opened no job that this tab has seen.</p>}
        {client &&
          jobs.map((job) => (
            <JobCard
              key={job.id}
              job={job}
              client={client}
              history={history}
              block={block}
              onError={(text) => setMessage({ error: true, text })}
            />
          ))}
      </section>
    </>
  );
}

/** "3 shards of 4 requests", or "3 shards of 4 or 5 requests". */
function shardSizes(requests: number, shards: number): string {
  const small = Math.floor(requests / shards);
  const big = Math.ceil(requests / shards);
  const of = small === big ? `${small}` : `${small} or ${big}`;
  return `${shards} shard${shards === 1 ? '' : 's'} of ${of} request${big === 1 ? '' : 's'}`;
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `about ${s} s`;
  if (s < 7200) return `about ${Math.round(s / 60)} min`;
  return `about ${(s / 3600).toFixed(1)} h`;
}

const PHASES: Record<JobStatus['phase'], string> = {
  pending: 'signed, waiting for the next replay',
  open: 'open',
  closed: 'closed',
  refused: 'refused',
};

function JobCard({
  job,
  client,
  history,
  block,
  onError,
}: {
  job: JobStatus;
  client: JobClient;
  history: JobHistory;
  block: number | null;
  onError: (text: string) => void;
}) {
  const [cancelling, setCancelling] = useState(false);
  // Cancelling cannot be undone: the person confirms it first, knowing what comes back.
  const [confirmCancel, setConfirmCancel] = useState(false);
  const events = history[job.id];
  const paidRequests = job.shards.filter((s) => s.status === 'paid').reduce((n, s) => n + s.end - s.first, 0);
  const settled = job.shards.filter((s) => s.status === 'paid' || s.status === 'refunded').length;
  const canCancel = job.phase === 'open' && !job.cancelled && (block === null || block < job.deadline);
  const cancel = async () => {
    setConfirmCancel(false);
    setCancelling(true);
    try {
      await client.cancel(job.id);
    } catch (err) {
      onError((err as Error).message);
    } finally {
      setCancelling(false);
    }
  };
  return (
    <article
      className="job"
      aria-label={`job ${shortId(job.id)}`}
      data-testid="job"
      data-job={job.id}
      data-phase={job.phase}
    >
      <h3>
        Job <code title={job.id}>{shortId(job.id)}</code>{' '}
        <span className={`job-phase job-phase-${job.phase}`} data-testid="job-phase">
          {PHASES[job.phase]}
          {job.cancelled ? ', cancelled' : ''}
        </span>
      </h3>
      {job.phase === 'refused' && (
        <p role="alert" className="error">
          The ledger refused it: {job.reason}
        </p>
      )}
      <dl className="facts job-facts">
        <dt>requests</dt>
        <dd>
          {job.requests} in {job.shards.length} shards, {job.model} on subnet {job.netuid}, up to {job.maxTokens} tokens
          each
        </dd>
        <dt>progress</dt>
        <dd data-testid="job-progress">
          {settled} of {job.shards.length} shards settled; {paidRequests} of {job.requests} requests paid
        </dd>
        <dt>price</dt>
        <dd title={rao(job.price)}>{tao(job.price, 9)} per request</dd>
        <dt>deposit</dt>
        <dd title={rao(job.deposit)} data-testid="job-amount-deposit">
          {tao(job.deposit, 9)}
        </dd>
        <dt>paid to miners</dt>
        <dd title={rao(job.paid)} data-testid="job-amount-paid">
          {tao(job.paid, 9)}
        </dd>
        <dt>refunded to you</dt>
        <dd title={rao(job.refunded)} data-testid="job-amount-refunded">
          {tao(job.refunded, 9)}
        </dd>
        <dt>miners forfeited</dt>
        <dd title={`${rao(job.forfeited)}: bonds destroyed by failed audits and lapsed claims`}>
          {job.forfeited > 0n ? `${tao(job.forfeited, 9)} (bonds destroyed)` : 'nothing'}
        </dd>
        <dt>blocks</dt>
        <dd>
          opened at {job.openedAt}, deadline {job.deadline}
          {job.phase === 'open' && block !== null && block < job.deadline && ` (${job.deadline - block} blocks left)`}
          {job.closedAt !== null && `, closed at ${job.closedAt}`}
        </dd>
      </dl>
      <div className="table-wrap">
        <table className="shards" data-testid="job-shards">
          <thead>
            <tr>
              <th scope="col">shard</th>
              <th scope="col">requests</th>
              <th scope="col">progress</th>
              <th scope="col">miner</th>
              <th scope="col">audit</th>
            </tr>
          </thead>
          <tbody>
            {job.shards.map((s) => (
              <tr key={s.shard} data-shard={s.shard} data-status={s.status}>
                <td>{s.shard}</td>
                <td>{s.end - s.first === 1 ? s.end : `${s.first + 1}–${s.end}`}</td>
                <td>
                  <ShardBar shard={s.shard} status={s.status} />
                </td>
                <td>{s.miner ? <code title={s.miner}>{shortId(s.miner)}</code> : '—'}</td>
                <td className="audit">{auditText(s, events?.[s.shard], job)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="row job-actions">
        {canCancel && !confirmCancel && (
          <button type="button" className="secondary" disabled={cancelling} onClick={() => setConfirmCancel(true)}>
            {cancelling ? 'Cancelling…' : 'Cancel job'}
          </button>
        )}
        {canCancel && confirmCancel && (
          <div role="group" aria-label="confirm cancel">
            <p>Cancel this job? Shards no miner holds are refunded now; claimed shards may still finish and be paid.</p>
            <div className="row">
              <button type="button" onClick={() => void cancel()}>
                Yes, cancel it
              </button>
              <button type="button" className="secondary" onClick={() => setConfirmCancel(false)}>
                Keep it
              </button>
            </div>
          </div>
        )}
        {job.phase === 'closed' && <JobOutput job={job} client={client} />}
      </div>
    </article>
  );
}

/** A shard's life as a bar that fills step by step, in words too (colour is never the only sign). */
function ShardBar({ shard, status }: { shard: number; status: ShardStatus }) {
  const { step, label } = SHARD_STEPS[status];
  return (
    <div className="shard-progress">
      <div
        className={`shard-bar shard-${status}`}
        role="progressbar"
        aria-label={`shard ${shard}`}
        aria-valuemin={0}
        aria-valuemax={3}
        aria-valuenow={step}
        aria-valuetext={label}
      >
        <div className="shard-fill" style={{ width: `${Math.max(4, (step / 3) * 100)}%` }} />
      </div>
      <span className="shard-label">{label}</span>
    </div>
  );
}

/** What the audits did to a shard: passed (paid), waiting, and what this tab saw fail before. */
function auditText(s: JobStatus['shards'][number], events: ShardEvents | undefined, job: JobStatus): string {
  const now =
    s.status === 'paid'
      ? 'passed: paid to its miner'
      : s.status === 'result'
        ? 'results published, waiting for a validator'
        : s.status === 'claimed'
          ? `generating; results due before block ${s.until}`
          : s.status === 'refunded'
            ? 'refunded to you'
            : job.phase === 'open' && !job.cancelled
              ? 'waiting for a miner'
              : '—';
  const before: string[] = [];
  if (events?.failedAudits) before.push(`failed ${events.failedAudits}× (bond destroyed, reopened)`);
  if (events?.lapsedClaims) before.push(`claim lapsed ${events.lapsedClaims}× (bond destroyed, reopened)`);
  return before.length ? `${now}; before: ${before.join(', ')}` : now;
}

/** Times a closed job's missing results are fetched again without a click. */
const AUTO_FETCHES = 3;

/** A closed job's output: every request's line, fetched from the miners, checked, and offered as a JSONL file. */
function JobOutput({ job, client }: { job: JobStatus; client: JobClient }) {
  const [lines, setLines] = useState<JobOutputLine[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    let live = true;
    client.results(job.id).then(
      (out) => {
        if (!live) return;
        setLines(out);
        setError(null);
      },
      (err: Error) => live && setError(err.message),
    );
    return () => {
      live = false;
    };
  }, [client, job.id, attempt]);
  const url = useMemo(
    () =>
      lines
        ? URL.createObjectURL(
            new Blob([lines.map((l) => `${JSON.stringify(l)}\n`).join('')], { type: 'application/jsonl' }),
          )
        : null,
    [lines],
  );
  useEffect(() => () => void (url && URL.revokeObjectURL(url)), [url]);
  // A miner may be out of reach for a moment (busy serving, reconnecting): fetch what is missing again by itself a
  // few times, further apart each time, before leaving it to the button.
  const missing = lines?.find((l) => 'error' in l && l.error.code === 'unavailable');
  useEffect(() => {
    if (!missing || attempt >= AUTO_FETCHES) return;
    const timer = setTimeout(() => setAttempt((a) => a + 1), 2000 * (attempt + 1));
    return () => clearTimeout(timer);
  }, [missing, attempt]);
  if (error)
    return (
      <>
        <span className="error">The output: {error}</span>
        <button type="button" className="secondary small" onClick={() => setAttempt((a) => a + 1)}>
          Try again
        </button>
      </>
    );
  if (!lines || !url) return <span className="muted">Fetching the output from the miners…</span>;
  const count = (code: 'refunded' | 'pending' | 'unavailable') =>
    lines.filter((l) => 'error' in l && l.error.code === code).length;
  const answered = lines.filter((l) => 'result' in l).length;
  const unavailable = count('unavailable');
  const without = [
    count('refunded') && `${count('refunded')} refunded`,
    unavailable && `${unavailable} not fetched`,
    count('pending') && `${count('pending')} pending`,
  ].filter(Boolean);
  return (
    <>
      <a className="button-link" href={url} download={`job-${job.id.slice(0, 12)}.jsonl`} data-testid="job-download">
        Download output
      </a>
      <span className="muted" data-testid="job-output-summary">
        {lines.length} lines: {answered} answered
        {without.length > 0 ? `, ${without.join(', ')}` : ''}
      </span>
      {unavailable > 0 && (
        <>
          <button type="button" className="secondary small" onClick={() => setAttempt((a) => a + 1)}>
            Fetch the {unavailable} missing again
          </button>
          {missing && 'error' in missing && (
            <span className="muted" data-testid="job-output-problem">
              {attempt < AUTO_FETCHES ? 'Trying again shortly. ' : ''}
              {missing.error.message}
            </span>
          )}
        </>
      )}
      <details className="job-output-sample">
        <summary>First answers</summary>
        <ol>
          {lines.slice(0, 5).map((l) => (
            <li key={l.custom_id}>
              <code>{l.custom_id}</code>: {'result' in l ? l.result.text : `(${l.error.code})`}
            </li>
          ))}
        </ol>
      </details>
    </>
  );
}
