/**
 * `window.webtensor`: the documented automation API for tests and tooling (docs/automation.md).
 * It exposes what the node really does; nothing here is a test double.
 */
import type { CaseOutput } from '../../shared/yuma/index.ts';
import type { SyntheticSpec } from '../../shared/yuma/synthetic.ts';
import type { RpcRequest } from '../../shared/p2p/messages.ts';
import { RpcError } from '../../shared/p2p/messages.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import {
  idleMiner,
  type GossipMessage,
  type MinerState,
  type NodeRuntime,
  type NodeState,
  type PeerView,
} from './node/runtime.ts';
import { yumaWorker } from './yuma-client.ts';
import type { EpochAgreement, LedgerView } from './node/ledger-node.ts';
import type { ClosedEpoch } from '../../shared/ledger/replay.ts';
import { recordId, type RecordKind } from '../../shared/ledger/records.ts';
import type { ValidatorState } from './node/validator.ts';
import { embed, generate, loadModel } from './inference-client.ts';
import type { Generation, Loaded } from '../../worker/inference.worker.ts';
import type { DevicePreference } from '../../worker/device.ts';
import type { GenerateParams, GenerateResult } from '../../shared/inference/protocol.ts';

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
  readonly status: NodeState['status'];
  readonly error: string | null;
  readonly peerId: string | null;
  readonly slot: number | null;
  readonly relay: NodeState['relay'];
  readonly peers: PeerView[];
  /** Requests refused per peer (bad frames, signatures, replays...). */
  readonly refused: Record<string, number>;
  readonly messages: GossipMessage[];
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
    /** Generation on the loaded model (greedy unless `sampling`): new token ids, text and why it ended. */
    generate(prompt: string, maxNewTokens: number, extras?: GenerationExtras): Promise<Generation>;
    /** Embedding of `text` (loaded feature-extraction model) as hex of its float32 bytes, for exact comparison. */
    embedHex(text: string): Promise<string>;
    /** Load a model (default: the best the server has) and serve it to peers over /webtensor/infer/1. */
    serve(modelId?: string): Promise<Loaded>;
    /**
     * Ask a peer to generate; returns its signed, checked final answer and the pieces it streamed before it.
     * `cancelAfterPieces`: cancel the request once that many pieces have arrived (rejects with code "cancelled").
     */
    remote(
      peer: string,
      model: string,
      prompt: string,
      maxNewTokens: number,
      extras?: GenerationExtras & { cancelAfterPieces?: number },
    ): Promise<{ result: GenerateResult; streamed: string[] }>;
  };
  /** The ledger as this tab sees it (null until a network config is loaded). Amounts are rao as strings. */
  ledger: {
    readonly network: { networkId: string; profile: string; blockMs: number; tempo: number } | null;
    readonly block: number | null;
    /** This node's UID on the subnet, or null. */
    readonly uid: number | null;
    /** Total stake on this node's hotkey. */
    readonly stake: string;
    readonly records: number;
    readonly registration: LedgerView['registration'];
    /** Per closed epoch: its roots and the permitted validator stake that signed the same. */
    readonly epochs: EpochAgreement[];
    /** Per closed epoch: the metagraph and where the emission went. */
    readonly summaries: ClosedEpoch[];
    /** Everything emission created so far, and the rounding dust kept aside. */
    readonly totals: { issued: string; dust: string } | null;
    /** Test networks: the faucet stakes `amount` rao on `hotkey` with a signed stake.add. */
    faucetStake(hotkey: string, amount: string): Promise<void>;
    /** Publish a record of ours (for tests of refusals); rejects with the refusal's code and message. */
    publish(kind: string, body: unknown): Promise<string>;
    debug: {
      /** Check and store records in bulk, as if synced. */
      importRecords(records: unknown[]): Promise<{ accepted: number; refused: number; ms: number }>;
      /** Replay the ledger in the worker now: how long it took, over how many records and epochs. */
      replay(): Promise<{ ms: number; records: number; epochs: number }>;
    };
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

export function installAutomation(runtime: NodeRuntime | null): void {
  const need = () => {
    if (!runtime) throw new Error('The node could not be configured; see the message on the page.');
    return runtime;
  };
  window.webtensor = {
    version: '0.1.0',
    start: () => need().start(),
    ready: runtime ? runtime.ready : Promise.reject(new Error('no node')),
    get status() {
      return runtime?.state.status ?? 'error';
    },
    get error() {
      return runtime ? runtime.state.error : 'The node could not be configured.';
    },
    get peerId() {
      return runtime?.state.peerId ?? null;
    },
    get slot() {
      return runtime?.state.slot ?? null;
    },
    get relay() {
      return runtime?.state.relay ?? { connected: false, reserved: false, address: null, reconnects: 0 };
    },
    get peers() {
      return runtime?.state.peers ?? [];
    },
    get refused() {
      return runtime?.state.refused ?? {};
    },
    get messages() {
      return runtime?.state.messages ?? [];
    },
    get miner() {
      return runtime?.state.miner ?? idleMiner;
    },
    rpc: (peer, method, params) => need().rpc(peer, method, params),
    publish: (text) => need().publish(text),
    debug: {
      signedRequest: (method, params) => need().signedRequest(method, params),
      throughput: (peer, bytes) => need().throughput(peer, bytes),
      connectivity: () => need().diagnostics(),
      async sendFrames(peer, frames, id) {
        const encoder = new TextEncoder();
        const bytes = frames.map((f) => (typeof f === 'string' ? encoder.encode(f) : new Uint8Array(f.zeroBytes)));
        try {
          return { ok: true, result: await need().exchangeFrames(peer, bytes, id) };
        } catch (err) {
          const e = err instanceof RpcError ? err : new RpcError('internal', (err as Error).message);
          return { ok: false, code: e.code, message: e.message };
        }
      },
    },
    inference: {
      load: (modelId, device) => loadModel(modelId, undefined, device, runtime?.hubHost),
      async loadWithProgress(modelId) {
        const phases: string[] = [];
        const downloaded = new Map<string, number>();
        const loaded = await loadModel(
          modelId,
          (p) => {
            if (phases.at(-1) !== p.phase) phases.push(p.phase);
            if (p.phase === 'download') downloaded.set(p.file, p.loaded);
          },
          'auto',
          runtime?.hubHost,
        );
        return { loaded, phases, downloadedBytes: [...downloaded.values()].reduce((a, b) => a + b, 0) };
      },
      generate: (prompt, maxNewTokens, extras) => generate({ prompt, maxNewTokens, ...extras }),
      async embedHex(text) {
        const v = await embed(text);
        return Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), (b) =>
          b.toString(16).padStart(2, '0'),
        ).join('');
      },
      serve: (modelId) => need().serveModel(modelId),
      async remote(peer, model, prompt, maxNewTokens, extras = {}) {
        const { cancelAfterPieces, ...rest } = extras;
        const streamed: string[] = [];
        const cancel = new AbortController();
        const result = await need().infer(
          peer,
          { model, prompt, maxNewTokens, ...rest },
          {
            signal: cancel.signal,
            onText: (text) => {
              streamed.push(text);
              if (streamed.length === cancelAfterPieces) cancel.abort();
            },
          },
        );
        return { result, streamed };
      },
    },
    ledger: {
      get network() {
        const c = runtime?.ledger?.config;
        return c
          ? { networkId: c.networkId, profile: c.profile, blockMs: c.blockMs, tempo: c.subnets[0]!.tempo }
          : null;
      },
      get block() {
        return runtime?.ledger?.block ?? null;
      },
      get uid() {
        const subnet = runtime?.subnet;
        return subnet ? runtime!.ledger!.uidOn(subnet.netuid) : null;
      },
      get stake() {
        const id = runtime?.state.peerId;
        return (id && runtime?.ledger?.view.snapshot?.stakes[id]?.toString()) || '0';
      },
      get records() {
        return runtime?.ledger?.view.records ?? 0;
      },
      get registration() {
        return runtime?.ledger?.view.registration ?? null;
      },
      get epochs() {
        return runtime?.ledger?.view.agreement ?? [];
      },
      get summaries() {
        return runtime?.ledger?.view.snapshot?.epochs ?? [];
      },
      get totals() {
        const s = runtime?.ledger?.view.snapshot;
        return s ? { issued: s.issued.toString(), dust: s.dust.toString() } : null;
      },
      async faucetStake(hotkey, amount) {
        const ledger = need().ledger;
        if (!ledger) throw new Error('This tab has no network config.');
        await ledger.faucetStake(hotkey, BigInt(amount));
      },
      async publish(kind, body) {
        const ledger = need().ledger;
        if (!ledger) throw new Error('This tab has no network config.');
        return recordId(await ledger.publish(kind as RecordKind, body as never));
      },
      debug: {
        importRecords: (records) => {
          const ledger = need().ledger;
          if (!ledger) throw new Error('This tab has no network config.');
          return ledger.importRecords(records);
        },
        async replay() {
          const ledger = need().ledger;
          if (!ledger) throw new Error('This tab has no network config.');
          const s = await ledger.replayNow();
          return { ms: s.ms, records: s.records, epochs: s.epochs.length };
        },
      },
    },
    get validator() {
      return runtime?.state.validator ?? null;
    },
    yuma: {
      runCase: (data, opts) => yumaWorker().runCase(data, opts),
      timeCase: (data, repeat) => yumaWorker().timeCase(data, repeat),
      benchEpoch: (spec, repeats) => yumaWorker().benchEpoch(spec, repeats),
    },
  };
  window.webtensor.ready.catch(() => {}); // surfaced through status/error
}
