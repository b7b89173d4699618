/**
 * `window.webtensor`: the documented automation API for tests and tooling (docs/automation.md).
 * It exposes what the node really does; nothing here is a test double.
 */
import type { CaseOutput } from '../../shared/yuma/index.ts';
import type { SyntheticSpec } from '../../shared/yuma/synthetic.ts';
import type { RpcRequest } from '../../shared/p2p/messages.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import { NodeError } from '../../shared/errors.ts';
import type { ClosedEpoch } from '../../shared/ledger/replay.ts';
import { recordId, type RecordKind } from '../../shared/ledger/records.ts';
import type { DevicePreference, Generation, Loaded } from '../../shared/inference/engine.ts';
import type { GenerateParams, GenerateResult } from '../../shared/inference/protocol.ts';
import type { WalletRecord } from '../../core/services/wallet.ts';
import type { AuditState } from '../../core/services/auditor.ts';
import { embed, workerInferenceEngine, yumaWorker } from '../../core/browser/workers.ts';
import type { NodeServices, NodeStatus } from '../../core/node.ts';
import { epochAgreement, type EpochAgreement } from '../../core/services/finality.ts';
import type { JoinState } from '../../core/services/join.ts';
import type { Announcement } from '../../core/services/announce.ts';
import { idleMiner, type MinerState } from '../../core/services/miner.ts';
import type { PeerView } from '../../core/services/peers.ts';
import type { RegistrationState } from '../../core/services/registration.ts';
import type { RecordGossipState } from '../../core/services/record-gossip.ts';
import { DexieLedgerStore } from '../../core/browser/ledger-store.ts';
import type { RelayState } from '../../core/services/relay-link.ts';
import type { ValidatorState } from '../../core/services/validator.ts';
import type { JobOutputLine } from '../../core/services/job-client.ts';
import { AmountError, parseTao } from '../../shared/ledger/amounts.ts';
import type { TabNode } from './shell/node-context.ts';
import { jobHistory, jobRequests, jobView, type JobView } from './jobs-view.ts';

/** A subnet in the last replay (amounts in rao as strings). */
export interface SubnetView {
  netuid: number;
  /** The next epoch to close. */
  epoch: number;
  /** What a registration burns now, and the proof-of-work bits it needs. */
  burn: string;
  difficulty: number;
  registrationsThisEpoch: number;
  uids: { uid: number; hotkey: string; role: 'miner' | 'validator'; registeredAt: number }[];
}

/** Options of a generation besides model, prompt and budget. */
export type GenerationExtras = Pick<GenerateParams, 'sampling' | 'stop'>;

/** How a diagnostic exchange ended: the peer's result, or its typed error. */
export type ExchangeOutcome = { ok: true; result: Json } | { ok: false; code: string; message: string };

export interface WebtensorAutomation {
  version: string;
  /** Start the node (what the Start button does); resolves when it holds a relay reservation. */
  start(): Promise<void>;
  /** Resolves when the node is up (after start(), or at once with ?autostart=1). */
  ready: Promise<void>;
  readonly status: NodeStatus['status'];
  readonly error: string | null;
  readonly peerId: string | null;
  readonly slot: number | null;
  readonly relay: Omit<RelayState, 'problem'>;
  readonly peers: readonly PeerView[];
  /** Requests refused per peer (bad frames, signatures, replays...). */
  readonly refused: Record<string, number>;
  readonly messages: readonly Announcement[];
  /** The model this tab serves: {model, device, phase, progress, ready, served, tokensServed, tokensPerSecond, lastError}. */
  readonly miner: MinerState;
  rpc(peer: string, method: string, params: Json): Promise<Json>;
  /** Publish a text on the network's announce topic (gossipsub). */
  publish(text: string): Promise<void>;
  debug: {
    signedRequest(method: string, params: Json): Promise<RpcRequest>;
    /** Stream `bytes` to a peer's bench sink; elapsed ms once the peer confirms receipt. */
    throughput(peer: string, bytes: number): Promise<{ ms: number; received: number }>;
    /** Connectivity diagnostics: peer-list freshness and errors, dials in flight, queued, backing off, failed. */
    connectivity(): unknown;
    /** Send raw frames to a peer's RPC service and report what it answers. */
    sendFrames(peer: string, frames: (string | { zeroBytes: number })[], id: string): Promise<ExchangeOutcome>;
  };
  inference: {
    /** Verify and load a catalogue model in the inference worker; device "auto" unless given. */
    load(modelId: string, device?: DevicePreference): Promise<Loaded>;
    /** The same, reporting the phases it went through and the bytes downloaded from the hub (if any). */
    loadWithProgress(modelId: string): Promise<{ loaded: Loaded; phases: string[]; downloadedBytes: number }>;
    /** Generation on the loaded model (greedy unless `sampling`; queued with the miner's requests): tokens, text, end. */
    generate(prompt: string, maxNewTokens: number, extras?: GenerationExtras): Promise<Generation>;
    /** Embedding of `text` (loaded feature-extraction model) as hex of its float32 bytes, for exact comparison. */
    embedHex(text: string): Promise<string>;
    /** Load a model (default: the best the server has) and serve it to peers over /webtensor/infer/1. */
    serve(modelId?: string): Promise<Loaded>;
    /**
     * Ask a peer to generate; returns its signed, checked final answer, the pieces it streamed before it, and
     * the ms from the call to the first non-empty piece (null if none came).
     * `cancelAfterPieces`: cancel the request once that many pieces have arrived (rejects with code "cancelled").
     */
    remote(
      peer: string,
      model: string,
      prompt: string,
      maxNewTokens: number,
      extras?: GenerationExtras & { cancelAfterPieces?: number },
    ): Promise<{ result: GenerateResult; streamed: string[]; firstPieceMs: number | null }>;
  };
  /** Answers this tab handed to validators to check (the Ask page's opt-in) and their verdicts. */
  readonly audits: AuditState | null;
  /** The ledger as this tab sees it (null until a network config is loaded). Amounts are rao as strings. */
  ledger: {
    readonly network: { networkId: string; profile: string; blockMs: number; tempo: number } | null;
    readonly block: number | null;
    /** This node's UID on the subnet, or null. */
    readonly uid: number | null;
    /** Total stake on this node's hotkey. */
    readonly stake: string;
    readonly records: number;
    /** Which of these record ids this tab's store holds (read from its IndexedDB). */
    held(ids: readonly string[]): Promise<string[]>;
    /** What the records topic's validator did with what arrived by gossip, and peers hung up on for their score. */
    readonly gossip: RecordGossipState | null;
    /** Each subnet as the last replay left it: the registration price, the epoch to close next, and its UIDs. */
    readonly subnets: readonly SubnetView[];
    readonly registration: RegistrationState | null;
    /** Per closed epoch: its roots and the permitted validator stake that signed the same. */
    readonly epochs: readonly EpochAgreement[];
    /** The last join from a peer's checkpoint (or why it failed), and the epoch replays start after (-1: genesis). */
    readonly join: JoinState['last'];
    readonly baseEpoch: number;
    /** Per closed epoch: the metagraph and where the emission went. */
    readonly summaries: readonly ClosedEpoch[];
    /** The free balance of `account` (rao), as this tab's latest replay has it. */
    balance(account: string): string;
    /** Everything emission created so far, and the rounding dust kept aside. */
    readonly totals: { issued: string; dust: string } | null;
    /** Test networks: the faucet stakes `amount` rao on `hotkey` with a signed stake.add. */
    faucetStake(hotkey: string, amount: string): Promise<void>;
    /** Publish a record of ours (for tests of refusals); rejects with the refusal's code and message. */
    publish(kind: string, body: unknown): Promise<string>;
    debug: {
      /** Check and store records in bulk, as if synced. */
      importRecords(records: unknown[]): Promise<{ accepted: number; refused: number; ms: number }>;
      /** Records the last replay refused: id → { code, message }. */
      refused(): Record<string, { code: string; message: string }>;
      /** Replay the ledger in the worker now: how long it took, over how many records and epochs. */
      replay(): Promise<{ ms: number; records: number; epochs: number }>;
    };
  };
  /**
   * This tab's wallet (docs/automation.md): amounts typed in τ (strings like "1.5"), returned in rao as decimal
   * strings. Each action rejects with { code: 'bad-input', message } and signs nothing when its input is wrong.
   */
  wallet: {
    /** Free balance and what may still be spent (net of records not replayed yet), rao. */
    readonly balance: string;
    readonly spendable: string;
    /** This key's stake per hotkey, rao. */
    readonly stakes: { hotkey: string; amount: string }[];
    /** Per closed epoch: what this key earned as a nominator and as a hotkey, rao, and whether it is final. */
    readonly earnings: { epoch: number; nominated: string; own: string; final: boolean }[];
    /** Every record this key signed that the store holds, newest first: pending, final or refused (with why). */
    history(): Promise<WalletRecord[]>;
    /** The validators a nominator could stake on (amounts in rao; the return is an estimate from final epochs). */
    validators(): object[];
    /** Each resolves with the signed record's id. */
    transfer(to: string, tao: string): Promise<string>;
    stake(hotkey: string, tao: string): Promise<string>;
    unstake(hotkey: string, tao: string): Promise<string>;
    /** Test networks: draw test τ from the faucet. */
    faucet(tao: string): Promise<string>;
  };
  /**
   * This key's batch jobs (docs/jobs.md): amounts in rao as decimal strings. `open` checks everything before it
   * signs (every line, the shards, the deadline, the sizes, the deposit) and rejects with { code, message } naming
   * what is wrong, having signed nothing.
   */
  jobs: {
    /** This key's jobs this tab has seen, newest first. */
    readonly list: JobView[];
    /**
     * Open a job: `lines` is a job file's JSONL text (or OpenAI batch lines for /v1/completions), or its lines as
     * values; `priceTao` the price per request in τ; `netuid` the tab's subnet unless given. Resolves with the id.
     */
    open(job: {
      netuid?: number;
      lines: string | unknown[];
      priceTao: string;
      deadlineEpochs: number;
      shards: number;
    }): Promise<string>;
    status(id: string): JobView | null;
    /** One line per request, in order: `{custom_id, result}` or `{custom_id, error: {code, message}}`. */
    results(id: string): Promise<JobOutputLine[]>;
    cancel(id: string): Promise<void>;
  };
  readonly validator: ValidatorState | null;
  yuma: {
    /** Run one Yuma case (vectors.json format) in the consensus Web Worker. */
    runCase(data: unknown, opts?: { replay?: boolean }): Promise<CaseOutput>;
    timeCase(data: unknown, repeat: number): Promise<{ meanMs: number; output: CaseOutput }>;
    /** Benchmark: exact engine vs float64 port on a seeded synthetic epoch built inside the worker. */
    benchEpoch(spec: SyntheticSpec, repeats: number): Promise<{ exactMs: number; floatMs: number }>;
  };
}

declare global {
  interface Window {
    webtensor: WebtensorAutomation;
  }
}

export function installAutomation(tab: TabNode | null): void {
  const node = tab?.node ?? null;
  const need = (): TabNode => {
    if (!tab) throw new NodeError('bad-config', 'The node could not be configured; see the message on the page.');
    return tab;
  };
  /** The started node's services; throws a sentence before start. */
  const started = (): NodeServices => {
    const services = need().node.services.get();
    if (!services) throw new NodeError('not-started', 'Start the node first.');
    return services;
  };
  const ledgerOf = () => {
    const ledger = started().ledger;
    if (!ledger) throw new NodeError('no-network', 'This tab has no network config.');
    return ledger;
  };
  const services = () => node?.services.get() ?? null;
  const ledger = () => services()?.ledger ?? null;
  const snapshot = () => ledger()?.consensus.snapshot.get() ?? null;
  const hub = () => node?.config.hub;
  const jobClient = () => {
    const jobs = started().jobs;
    if (!jobs) throw new NodeError('no-network', 'This tab has no network config or no file store: it runs no jobs.');
    return jobs.client;
  };
  // Follow this key's jobs from the start, so each shard's history (reopened after a failed audit) is complete.
  node?.services.subscribe((s) => s?.jobs && jobHistory(s.jobs.client));
  // A second, read-only handle on the tab's ledger database (IndexedDB takes several connections).
  let reader: { key: string; store: DexieLedgerStore } | null = null;
  const storeReader = () => {
    // The slot the platform opened the ledger of (core/browser/platform.ts).
    const slot = node?.status.get().slot ?? 0;
    const networkId = ledger()?.network.networkId;
    if (!networkId) throw new NodeError('not-started', 'Start the node first.');
    const key = `${slot}/${networkId}`;
    if (reader?.key !== key) reader = { key, store: new DexieLedgerStore(slot, networkId) };
    return reader.store;
  };

  window.webtensor = {
    version: '0.2.0',
    start: async () => void (await need().node.start()),
    ready: node
      ? node.ready.then(() => undefined)
      : Promise.reject(new NodeError('bad-config', 'The node could not be configured.')),
    get status() {
      return node?.status.get().status ?? 'error';
    },
    get error() {
      return node ? node.status.get().error : 'The node could not be configured.';
    },
    get peerId() {
      return node?.status.get().peerId ?? null;
    },
    get slot() {
      return node?.status.get().slot ?? null;
    },
    get relay() {
      const r = services()?.relay.state.get();
      return r
        ? { connected: r.connected, reserved: r.reserved, address: r.address, reconnects: r.reconnects }
        : { connected: false, reserved: false, address: null, reconnects: 0 };
    },
    get peers() {
      return services()?.peers.peers.get() ?? [];
    },
    get refused() {
      return services()?.rpc.refusals.get() ?? {};
    },
    get messages() {
      return services()?.announcements.messages.get() ?? [];
    },
    get miner() {
      return services()?.miner?.state.get() ?? idleMiner;
    },
    rpc: (peer, method, params) => started().rpc.call(peer, method, params, { protocol: PROTOCOLS.rpc }),
    publish: (text) => started().announcements.publish(text),
    debug: {
      signedRequest: (method, params) => started().rpc.signedRequest(method, params),
      throughput: (peer, bytes) => started().diagnostics.throughput(peer, bytes),
      connectivity: () => started().discovery.describe(),
      async sendFrames(peer, frames, id) {
        const encoder = new TextEncoder();
        const bytes = frames.map((f) => (typeof f === 'string' ? encoder.encode(f) : new Uint8Array(f.zeroBytes)));
        try {
          return { ok: true, result: await started().rpc.exchangeFrames(peer, bytes, id, { protocol: PROTOCOLS.rpc }) };
        } catch (err) {
          const e = err instanceof RpcError ? err : new RpcError('internal', (err as Error).message);
          return { ok: false, code: e.code, message: e.message };
        }
      },
    },
    inference: {
      load: (modelId, device) => workerInferenceEngine.load(modelId, undefined, device, hub()),
      async loadWithProgress(modelId) {
        const phases: string[] = [];
        const downloaded = new Map<string, number>();
        const loaded = await workerInferenceEngine.load(
          modelId,
          (p) => {
            if (phases.at(-1) !== p.phase) phases.push(p.phase);
            if (p.phase === 'download') downloaded.set(p.file, p.loaded);
          },
          'auto',
          hub(),
        );
        return { loaded, phases, downloadedBytes: [...downloaded.values()].reduce((a, b) => a + b, 0) };
      },
      // The engine runs one generation at a time: in a tab that serves, wait in line with the miner's requests (a
      // validator's challenge may be running) instead of failing as busy.
      generate: (prompt, maxNewTokens, extras) => {
        const miner = services()?.miner;
        const model = miner?.state.get().model;
        return miner && model
          ? miner.generateHere({ model, prompt, maxNewTokens, ...extras })
          : workerInferenceEngine.generate({ prompt, maxNewTokens, ...extras });
      },
      async embedHex(text) {
        const v = await embed(text);
        return Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), (b) =>
          b.toString(16).padStart(2, '0'),
        ).join('');
      },
      serve: (modelId) => need().roles.serveModel(modelId),
      async remote(peer, model, prompt, maxNewTokens, extras = {}) {
        const { cancelAfterPieces, ...rest } = extras;
        const streamed: string[] = [];
        const cancel = new AbortController();
        const start = performance.now();
        let firstPieceMs: number | null = null;
        const result = await started().client.infer(
          peer,
          { model, prompt, maxNewTokens, ...rest },
          {
            signal: cancel.signal,
            onText: (text) => {
              if (firstPieceMs === null && text !== '') firstPieceMs = performance.now() - start;
              streamed.push(text);
              if (streamed.length === cancelAfterPieces) cancel.abort();
            },
          },
        );
        return { result, streamed, firstPieceMs };
      },
    },
    ledger: {
      get network() {
        const c = ledger()?.network;
        return c
          ? { networkId: c.networkId, profile: c.profile, blockMs: c.blockMs, tempo: c.subnets[0]!.tempo }
          : null;
      },
      get block() {
        return ledger()?.consensus.currentBlock() ?? null;
      },
      get uid() {
        const subnet = tab?.roles.subnet();
        const s = services();
        return subnet && s?.ledger ? s.ledger.consensus.uidOf(subnet.netuid, s.peerId) : null;
      },
      get stake() {
        const id = node?.status.get().peerId;
        return (id && snapshot()?.stakes[id]?.toString()) || '0';
      },
      get records() {
        return ledger()?.book.state.get().records ?? 0;
      },
      async held(ids) {
        const rows = await storeReader().get(ids);
        return rows.filter((r) => r !== undefined).map((r) => r.id);
      },
      get gossip() {
        const counts = ledger()?.gossip.counts;
        return counts ? { ...counts } : null;
      },
      get subnets() {
        return (snapshot()?.subnets ?? []).map((s) => ({
          netuid: s.netuid,
          epoch: s.epoch,
          burn: s.burn.toString(),
          difficulty: s.difficulty,
          registrationsThisEpoch: s.registrationsThisEpoch,
          uids: s.uids.map((u, uid) => ({ uid, hotkey: u.hotkey, role: u.role, registeredAt: u.registeredAt })),
        }));
      },
      get registration() {
        return ledger()?.registration.state.get() ?? null;
      },
      get epochs() {
        return epochAgreement(snapshot(), tab?.roles.subnet()?.netuid ?? 1);
      },
      get summaries() {
        return snapshot()?.epochs ?? [];
      },
      get join() {
        return ledger()?.join.state.get().last ?? null;
      },
      get baseEpoch() {
        return snapshot()?.baseEpoch ?? -1;
      },
      balance: (account) => (snapshot()?.balances[account] ?? 0n).toString(),
      get totals() {
        const s = snapshot();
        return s ? { issued: s.issued.toString(), dust: s.dust.toString() } : null;
      },
      faucetStake: (hotkey, amount) => ledgerOf().faucetStake(hotkey, BigInt(amount)),
      async publish(kind, body) {
        return recordId(await ledgerOf().book.publish(kind as RecordKind, body as never));
      },
      debug: {
        importRecords: (records) => ledgerOf().book.importRecords(records),
        refused: () => snapshot()?.refused ?? {},
        async replay() {
          const s = await ledgerOf().consensus.replayNow();
          return { ms: s.ms, records: s.records, epochs: s.epochs.length };
        },
      },
    },
    wallet: {
      get balance() {
        return (ledger()?.wallet.balance() ?? 0n).toString();
      },
      get spendable() {
        return (ledger()?.wallet.spendable() ?? 0n).toString();
      },
      get stakes() {
        return (ledger()?.wallet.stakes() ?? []).map((s) => ({ hotkey: s.hotkey, amount: s.amount.toString() }));
      },
      get earnings() {
        return (ledger()?.wallet.earnings() ?? []).map((e) => ({
          ...e,
          nominated: e.nominated.toString(),
          own: e.own.toString(),
        }));
      },
      history: () => ledgerOf().wallet.history(),
      validators: () =>
        ledgerOf()
          .wallet.validators()
          .map((v) => ({
            ...v,
            stake: v.stake.toString(),
            nominators: v.nominators.map((n) => ({ account: n.account, stake: n.stake.toString() })),
            dividends: v.dividends.map((d) => ({ epoch: d.epoch, rao: d.rao.toString() })),
          })),
      transfer: async (to, amount) => recordId(await ledgerOf().wallet.transfer(to, amount)),
      stake: async (hotkey, amount) => recordId(await ledgerOf().wallet.stake(hotkey, amount)),
      unstake: async (hotkey, amount) => recordId(await ledgerOf().wallet.unstake(hotkey, amount)),
      faucet: async (amount) => recordId(await ledgerOf().wallet.faucet(amount)),
    },
    jobs: {
      get list() {
        const client = services()?.jobs?.client;
        if (!client) return [];
        const history = jobHistory(client).get();
        return client.state.get().jobs.map((j) => jobView(j, history));
      },
      async open({ netuid, lines, priceTao, deadlineEpochs, shards }) {
        const client = jobClient();
        const subnets = ledgerOf().network.subnets;
        const subnet = subnets.find((s) => s.netuid === (netuid ?? tab?.roles.subnet()?.netuid ?? subnets[0]?.netuid));
        if (!subnet) throw new NodeError('bad-input', `This network has no subnet ${String(netuid)}.`);
        let price: bigint;
        try {
          price = parseTao(String(priceTao));
        } catch (err) {
          if (err instanceof AmountError)
            throw new NodeError('bad-input', `The price per request: ${err.message}`, { cause: err });
          throw err;
        }
        let requests: string | unknown[];
        try {
          requests = typeof lines === 'string' ? jobRequests(lines, subnet.model) : lines;
        } catch (err) {
          throw new NodeError('bad-input', `The job's requests are not valid: ${(err as Error).message}.`, {
            cause: err,
          });
        }
        return client.open({ netuid: subnet.netuid, lines: requests, price, deadlineEpochs, shards });
      },
      status(id) {
        const client = services()?.jobs?.client;
        const job = client?.status(id);
        return client && job ? jobView(job, jobHistory(client).get()) : null;
      },
      results: (id) => jobClient().results(id),
      cancel: (id) => jobClient().cancel(id),
    },
    get validator() {
      return tab?.roles.validator.get()?.state.get() ?? null;
    },
    get audits() {
      return tab?.node.services.get()?.auditor.state.get() ?? null;
    },
    yuma: {
      runCase: (data, opts) => yumaWorker().runCase(data, opts),
      timeCase: (data, repeat) => yumaWorker().timeCase(data, repeat),
      benchEpoch: (spec, repeats) => yumaWorker().benchEpoch(spec, repeats),
    },
  };
  window.webtensor.ready.catch(() => {}); // surfaced through status/error
}
