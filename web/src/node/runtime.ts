/**
 * The node that lives in a tab: identity slot and key, libp2p, the relay connection (reconnecting with backoff
 * when the relay goes away), the reservation, peer discovery from the relay's peer list, direct WebRTC dials,
 * the RPC service, gossip, and round-trip times (from libp2p's connection monitor). It publishes a plain state object and a 'change' event.
 */
import type { Connection, PrivateKey } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { lpStream } from '@libp2p/utils';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { z } from 'zod';
import {
  BENCH_SINK_PROTOCOL,
  MAX_BENCH_BYTES,
  MAX_FRAME_BYTES,
  PEERS_PROTOCOL,
  benchReceiptSchema,
  RPC_PROTOCOL,
  RpcError,
  decodeFrame,
  encodeFrame,
  peerListSchema,
  type RpcRequest,
} from '../../../shared/p2p/messages.ts';
import { RpcServer, exchange, type Json } from '../../../shared/p2p/rpc.ts';
import { signRequest } from '../../../shared/p2p/signing.ts';
import type { NodeConfig } from './config.ts';
import { cancelGeneration, generate, loadModel } from '../inference-client.ts';
import { defaultGenerationPreference, findModel } from '../../../shared/inference/catalogue.ts';
import {
  INFER_PROTOCOL,
  checkResult,
  generateParamsSchema,
  modelHash,
  outputHash,
  signResult,
  type GenerateParams,
  type GenerateResult,
} from '../../../shared/inference/protocol.ts';
import { InferenceQueue } from '../../../shared/inference/queue.ts';
import { NetworkConfigError, parseNetworkConfig, type NetworkConfig } from '../../../shared/ledger/config.ts';
import { LedgerNode, type LedgerView } from './ledger-node.ts';
import { Validator, type ValidatorState } from './validator.ts';
import { SlotDb } from './db.ts';
import { Dialer } from './dialer.ts';
import { claimSlot, exportKey, importKey, loadOrCreateKey } from './identity.ts';
import { createTabNode, isDirect, type TabNode } from './libp2p.ts';

export const ANNOUNCE_TOPIC = 'webtensor/local/announce/1';
/** Requests a miner holds at once (one running, the rest waiting) before it answers "busy". */
export const MINER_QUEUE_CAPACITY = 4;
const announceSchema = z.object({ text: z.string().max(1000) });

export interface PeerView {
  peerId: string;
  direct: boolean;
  rttMs: number | null;
}

export interface GossipMessage {
  from: string;
  text: string;
  at: number;
}

export interface MinerState {
  model: string | null;
  device: 'wasm' | 'webgpu' | null;
  /** Why that device: shown to the user. */
  deviceReason: string | null;
  phase: 'idle' | 'downloading' | 'verifying' | 'loading' | 'ready' | 'error';
  /** Bytes verified or loaded so far, of total, in the current phase. */
  progress: { loaded: number; total: number };
  ready: boolean;
  served: number;
  tokensServed: number;
  /** Tokens per second over the last request served. */
  tokensPerSecond: number | null;
  /** Requests waiting or running. */
  queueDepth: number;
  /** Requests refused because the queue was full. */
  busyRefusals: number;
  /** The last request this miner worked on: how many tokens it generated and why it ended. */
  lastRequest: { tokens: number; finish: GenerateResult['finish'] } | null;
  lastError: string | null;
}

/** A tab that serves no model yet. */
export const idleMiner: MinerState = {
  model: null,
  device: null,
  deviceReason: null,
  phase: 'idle',
  progress: { loaded: 0, total: 0 },
  ready: false,
  served: 0,
  tokensServed: 0,
  tokensPerSecond: null,
  queueDepth: 0,
  busyRefusals: 0,
  lastRequest: null,
  lastError: null,
};

export interface NodeState {
  status: 'idle' | 'starting' | 'running' | 'error';
  error: string | null;
  slot: number | null;
  peerId: string | null;
  relay: { connected: boolean; reserved: boolean; address: string | null; reconnects: number };
  peers: PeerView[];
  /** Requests refused per peer: this node's local view of who sends garbage. */
  refused: Record<string, number>;
  messages: GossipMessage[];
  dialFailures: number;
  miner: MinerState;
  /** The ledger as this tab sees it, once the network config is loaded. */
  ledger: LedgerView | null;
  validator: ValidatorState | null;
}

let requestCounter = 0;
const newRequestId = () =>
  `${Date.now().toString(36)}-${(requestCounter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

export class NodeRuntime extends EventTarget {
  state: NodeState = {
    status: 'idle',
    error: null,
    slot: null,
    peerId: null,
    relay: { connected: false, reserved: false, address: null, reconnects: 0 },
    peers: [],
    refused: {},
    messages: [],
    dialFailures: 0,
    miner: idleMiner,
    ledger: null,
    validator: null,
  };
  node: TabNode | null = null;
  ledger: LedgerNode | null = null;
  validator: Validator | null = null;
  private firstReplay: Promise<void> | null = null;
  private key: PrivateKey | null = null;
  private db: SlotDb | null = null;
  /** The model this node serves to peers, once loaded, with its hash. */
  servingModel: string | null = null;
  private servingHash = '';
  private readonly queue = new InferenceQueue(MINER_QUEUE_CAPACITY, (queueDepth) =>
    this.update({ miner: { ...this.state.miner, queueDepth } }),
  );
  private relayAddr: Multiaddr | null = null;
  private relayPeer: string | null = null;
  private dialer: Dialer | null = null;
  /** When the relay's peer list last arrived, and how many peers it named (diagnostics). */
  lastPeerList: { at: number; count: number } | null = null;

  private timers: ReturnType<typeof setInterval>[] = [];
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;

  constructor(private readonly config: NodeConfig) {
    super();
    this.readyPromise = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.readyPromise.catch(() => {}); // reported through state; callers that await it see the error
  }

  /** Resolves once the node holds a relay reservation and can be reached. */
  get ready(): Promise<void> {
    return this.readyPromise;
  }

  private update(patch: Partial<NodeState>) {
    this.state = { ...this.state, ...patch };
    this.dispatchEvent(new Event('change'));
  }

  async start(): Promise<void> {
    if (this.state.status !== 'idle') return this.readyPromise;
    this.update({ status: 'starting' });
    try {
      const slot = await claimSlot();
      this.db = new SlotDb(slot);
      this.key = await loadOrCreateKey(this.db);
      const node = await createTabNode(this.key, this.config.iceServers);
      this.node = node;
      this.update({ slot, peerId: node.peerId.toString() });
      this.relayAddr = await this.resolveRelay();
      this.relayPeer = [...this.relayAddr.getComponents()].reverse().find((c) => c.name === 'p2p')?.value ?? null;
      if (!this.relayPeer)
        throw new Error("The relay address has no /p2p/<peer id>; pass the full multiaddr from the relay's /healthz.");
      this.update({ relay: { ...this.state.relay, address: this.relayAddr.toString() } });
      await this.serveRpc(node);
      await this.serveInference(node);
      await this.serveBenchSink(node);
      this.watchConnections(node);
      this.subscribeGossip(node);
      this.dialer = new Dialer({
        self: node.peerId.toString(),
        isConnected: (peer) => this.directConnection(peer) !== undefined,
        dial: async (peer, signal) => {
          await node.dial(multiaddr(`${this.relayAddr!.toString()}/p2p-circuit/webrtc/p2p/${peer}`), { signal });
        },
      });
      await this.connectRelay();
      await this.startLedger(node, slot);
      this.timers.push(setInterval(() => void this.pollPeers(), 2000));
      this.timers.push(setInterval(() => this.refreshPeers(), 1000));
    } catch (err) {
      const message = (err as Error).message;
      this.update({ status: 'error', error: message });
      this.rejectReady(new Error(message));
    }
    return this.readyPromise;
  }

  private async resolveRelay(): Promise<Multiaddr> {
    if ('multiaddr' in this.config.relay) return this.config.relay.multiaddr;
    const url = this.config.relay.healthUrl;
    let body: unknown;
    try {
      body = await (await fetch(url)).json();
    } catch {
      throw new Error(
        `No relay answered at ${url}. Start one with "npm run relay" (or "npm start"), or pass ?relay=<multiaddr>.`,
      );
    }
    const parsed = z.object({ multiaddrs: z.array(z.string()).min(1) }).safeParse(body);
    if (!parsed.success)
      throw new Error(`${url} did not describe a relay (no multiaddrs). Is that the relay's health URL?`);
    return multiaddr(parsed.data.multiaddrs.find((m) => m.includes('/ws')) ?? parsed.data.multiaddrs[0]!);
  }

  /** Dial the relay until it answers, then wait for the reservation. Used at start and after the relay returns. */
  private async connectRelay(): Promise<void> {
    const node = this.node!;
    let delay = 250;
    for (;;) {
      try {
        await node.dial(this.relayAddr!, { signal: AbortSignal.timeout(5000) });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(2000, delay * 2);
      }
    }
    this.update({ relay: { ...this.state.relay, connected: true } });
    // The reservation is done when our circuit address through this relay appears (self:peer:update is debounced).
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (node.getMultiaddrs().some((m) => m.toString().includes(`${this.relayPeer}/p2p-circuit`))) {
        this.update({ status: 'running', relay: { ...this.state.relay, connected: true, reserved: true } });
        this.resolveReady();
        void this.pollPeers();
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    this.update({ error: 'The relay accepted the connection but gave no reservation within 15 s; retrying.' });
    await node.hangUp(peerIdFromString(this.relayPeer!)).catch(() => {});
  }

  private watchConnections(node: TabNode) {
    node.addEventListener('peer:disconnect', (e) => {
      const peer = e.detail.toString();
      if (peer === this.relayPeer && this.state.status !== 'error') {
        this.update({
          relay: {
            ...this.state.relay,
            connected: false,
            reserved: false,
            reconnects: this.state.relay.reconnects + 1,
          },
        });
        void this.connectRelay();
      }
      this.refreshPeers();
    });
    node.addEventListener('connection:open', () => this.refreshPeers());
    node.addEventListener('connection:close', () => this.refreshPeers());
  }

  private directConnection(peer: string): Connection | undefined {
    return this.node?.getConnections(peerIdFromString(peer)).find((c) => isDirect(c) && c.status === 'open');
  }

  private refreshPeers() {
    const node = this.node;
    if (!node) return;
    const seen = new Map<string, PeerView>();
    for (const c of node.getConnections()) {
      const peer = c.remotePeer.toString();
      if (peer === this.relayPeer || c.status !== 'open') continue;
      const direct = isDirect(c);
      const prev = seen.get(peer);
      // RTT comes from libp2p's connection monitor, which already pings every connection.
      if (!prev || (direct && !prev.direct)) seen.set(peer, { peerId: peer, direct, rttMs: c.rtt ?? null });
    }
    const peers = [...seen.values()].sort((a, b) => a.peerId.localeCompare(b.peerId));
    if (JSON.stringify(peers) !== JSON.stringify(this.state.peers)) this.update({ peers });
  }

  private async pollPeers() {
    const node = this.node;
    if (!node || !this.state.relay.reserved) return;
    try {
      const stream = await node.dialProtocol(peerIdFromString(this.relayPeer!), PEERS_PROTOCOL, {
        signal: AbortSignal.timeout(5000),
      });
      const bytes = await lpStream(stream, { maxDataLength: MAX_FRAME_BYTES }).read({
        signal: AbortSignal.timeout(5000),
      });
      await stream.close({ signal: AbortSignal.timeout(2000) }).catch(() => stream.abort(new Error('closing failed')));
      const { peers } = decodeFrame(bytes.subarray(), peerListSchema);
      this.lastPeerList = { at: Date.now(), count: peers.length };
      this.dialer!.offer(peers);
      this.update({ dialFailures: this.dialer!.failures });
      // A tab that closed vanishes from the relay's list at once, while its WebRTC connection can linger for
      // many seconds. Drop a peer that is missing from the list *and* does not answer a ping. The ping is what
      // protects healthy connections: right after a relay restart the list is incomplete until every tab has
      // re-reserved, but a live peer still answers.
      const listed = new Set(peers);
      await Promise.all(
        this.state.peers
          .filter((view) => !listed.has(view.peerId))
          .map(async (view) => {
            const peer = peerIdFromString(view.peerId);
            // Only silence proves a peer gone. Other failures (e.g. the one ping stream per connection is busy
            // with the RTT probe or libp2p's connection monitor) are inconclusive and must not cut a connection.
            const silent = await node.services.ping.ping(peer, { signal: AbortSignal.timeout(2000) }).then(
              () => false,
              (err: Error) => err.name === 'TimeoutError' || err.name === 'AbortError',
            );
            if (silent) await node.hangUp(peer).catch(() => {});
          }),
      );
    } catch (err) {
      // The relay may be restarting; the reconnect loop handles it.
      this.lastPeerListError = (err as Error).message;
    }
  }

  lastPeerListError: string | null = null;

  /** Connectivity diagnostics for tests and the curious: peer-list freshness, dials in flight and failed. */
  diagnostics() {
    return {
      peerList: this.lastPeerList ? { ageMs: Date.now() - this.lastPeerList.at, count: this.lastPeerList.count } : null,
      peerListError: this.lastPeerListError,
      dials: this.dialer?.describe() ?? null,
    };
  }

  private async serveRpc(node: TabNode) {
    const server = new RpcServer({
      methods: {
        'node.echo': {
          check: (p) => (JSON.stringify(p).length <= 16_384 ? null : 'echo params must be at most 16 KiB'),
          run: async (p) => p,
        },
        'node.info': {
          run: async () => ({ peerId: node.peerId.toString(), slot: this.state.slot, peers: this.state.peers.length }),
        },
        'node.count': {
          check: (p) =>
            Number.isInteger(p) && (p as number) >= 0 && (p as number) <= 100 ? null : 'count must be an integer 0-100',
          run: async (p, ctx) => {
            for (let k = 0; k < (p as number); k++) await ctx.emit(k);
            return p;
          },
        },
      },
      onRefused: (peer) => this.countRefusal(peer),
    });
    await node.handle(RPC_PROTOCOL, (stream, connection) => server.handle(stream, connection.remotePeer.toString()));
  }

  private countRefusal(peer: string) {
    this.update({ refused: { ...this.state.refused, [peer]: (this.state.refused[peer] ?? 0) + 1 } });
  }

  /**
   * `/webtensor/infer/1`: generate with the served model for a peer, streaming text pieces, one request at a
   * time through a bounded queue; the final answer is signed. A caller that resets the stream cancels the work.
   */
  private async serveInference(node: TabNode) {
    const server = new RpcServer({
      methods: {
        'infer.generate': {
          check: (p) => {
            const r = generateParamsSchema.safeParse(p);
            return r.success ? null : `${r.error.issues[0]!.path.join('.') || 'params'}: ${r.error.issues[0]!.message}`;
          },
          run: async (p, ctx) => {
            const params = generateParamsSchema.parse(p);
            if (params.model !== this.servingModel)
              throw new RpcError(
                'unsupported-model',
                `this miner serves ${this.servingModel ?? 'no model yet'}, not ${params.model}`,
              );
            // A piece that cannot be sent means the caller left; the signal cancels the work.
            const emit = (text: string) => ctx.emit({ text }).catch(() => {});
            return (await this.generateFor(params, ctx.signal, emit, ctx.requestId)) as Json;
          },
        },
      },
      onRefused: (peer, code) => {
        if (code === 'busy')
          this.update({ miner: { ...this.state.miner, busyRefusals: this.state.miner.busyRefusals + 1 } });
        else if (code !== 'cancelled') this.countRefusal(peer);
      },
    });
    await node.handle(INFER_PROTOCOL, (stream, connection) => server.handle(stream, connection.remotePeer.toString()), {
      maxInboundStreams: 16,
    });
  }

  private async generateFor(
    params: GenerateParams,
    signal: AbortSignal,
    onText: (text: string) => unknown,
    requestId: string,
  ): Promise<GenerateResult> {
    const fault = this.ledger?.config.profile === 'test' ? this.config.fault : null;
    if (fault === 'drop')
      await new Promise((_, reject) =>
        signal.addEventListener('abort', () => reject(new RpcError('cancelled', 'dropped'))),
      );
    if (fault === 'slow') await new Promise((r) => setTimeout(r, 10_000));
    const { value: out, queuedMs } = await this.queue.run(signal, async () => {
      const onAbort = () => void cancelGeneration();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        return await generate(
          { prompt: params.prompt, maxNewTokens: params.maxNewTokens, sampling: params.sampling, stop: params.stop },
          onText,
        );
      } catch (err) {
        this.update({ miner: { ...this.state.miner, lastError: (err as Error).message } });
        throw err;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    });
    const m = this.state.miner;
    this.update({
      miner: {
        ...m,
        served: m.served + (out.finish === 'cancelled' ? 0 : 1),
        tokensServed: m.tokensServed + out.tokenIds.length,
        tokensPerSecond: out.ms > 0 ? (out.tokenIds.length * 1000) / out.ms : null,
        lastRequest: { tokens: out.tokenIds.length, finish: out.finish },
      },
    });
    if (out.finish === 'cancelled') throw new RpcError('cancelled', 'the caller cancelled the request');
    // A miner that makes things up: other token ids, consistently signed and hashed, so only a check catches it.
    if (fault === 'wrong-output') out.tokenIds = out.tokenIds.map((t) => (t * 7 + 3) % 300);
    return signResult(this.key!, {
      requestId,
      miner: this.node!.peerId.toString(),
      model: params.model,
      modelHash: this.servingHash,
      text: out.text,
      tokenIds: out.tokenIds,
      outputHash: await outputHash(out.tokenIds),
      promptTokens: out.promptTokens,
      finish: out.finish,
      queueMs: Math.round(queuedMs),
      inferMs: Math.round(out.ms),
    });
  }

  /** Count the bytes a peer streams (at most MAX_BENCH_BYTES), then answer how many arrived. */
  private async serveBenchSink(node: TabNode) {
    await node.handle(
      BENCH_SINK_PROTOCOL,
      async (stream) => {
        let received = 0;
        try {
          for await (const chunk of stream) {
            received += chunk.byteLength;
            if (received > MAX_BENCH_BYTES) throw new Error(`more than ${MAX_BENCH_BYTES} bytes`);
          }
          const signal = AbortSignal.timeout(5000);
          await lpStream(stream, { maxDataLength: MAX_FRAME_BYTES }).write(encodeFrame({ received }), { signal });
          await stream.close({ signal });
        } catch (err) {
          stream.abort(err as Error);
        }
      },
      { maxInboundStreams: 2 },
    );
  }

  /** Stream `bytes` to a peer's bench sink over a direct connection; returns elapsed ms once it confirms. */
  async throughput(peer: string, bytes: number): Promise<{ ms: number; received: number }> {
    if (!Number.isInteger(bytes) || bytes <= 0 || bytes > MAX_BENCH_BYTES)
      throw new Error(`bytes must be an integer from 1 to ${MAX_BENCH_BYTES}`);
    const signal = AbortSignal.timeout(60_000);
    const stream = await this.node!.dialProtocol(peerIdFromString(peer), BENCH_SINK_PROTOCOL, { signal });
    const chunk = new Uint8Array(64 * 1024);
    const start = performance.now();
    for (let sent = 0; sent < bytes; sent += chunk.byteLength) {
      if (!stream.send(chunk.subarray(0, Math.min(chunk.byteLength, bytes - sent)))) await stream.onDrain({ signal });
    }
    await stream.close({ signal });
    const receipt = decodeFrame(
      (await lpStream(stream, { maxDataLength: MAX_FRAME_BYTES }).read({ signal })).subarray(),
      benchReceiptSchema,
    );
    return { ms: performance.now() - start, received: receipt.received };
  }

  private subscribeGossip(node: TabNode) {
    const pubsub = node.services.pubsub;
    pubsub.subscribe(ANNOUNCE_TOPIC);
    pubsub.addEventListener('message', (e) => {
      if (e.detail.topic !== ANNOUNCE_TOPIC || e.detail.type !== 'signed') return;
      try {
        const { text } = decodeFrame(e.detail.data, announceSchema);
        const messages = [...this.state.messages, { from: e.detail.from.toString(), text, at: Date.now() }].slice(-100);
        this.update({ messages });
      } catch {
        const peer = e.detail.from.toString();
        this.update({ refused: { ...this.state.refused, [peer]: (this.state.refused[peer] ?? 0) + 1 } });
      }
    });
  }

  async publish(text: string): Promise<void> {
    const node = this.node!;
    await node.services.pubsub.publish(ANNOUNCE_TOPIC, encodeFrame({ text }));
    // Gossipsub does not deliver to the publisher; show our own message as sent.
    const messages = [...this.state.messages, { from: node.peerId.toString(), text, at: Date.now() }].slice(-100);
    this.update({ messages });
  }

  /** Where the network config is: the URL's network=, else /network beside the relay's /healthz. */
  private networkUrl(): string | null {
    if (this.config.network) return this.config.network;
    if ('healthUrl' in this.config.relay) return this.config.relay.healthUrl.replace(/\/healthz$/, '/network');
    return null;
  }

  private async loadNetworkConfig(): Promise<NetworkConfig | null> {
    const url = this.networkUrl();
    if (!url) return null;
    let data: unknown;
    try {
      data = await (await fetch(url)).json();
    } catch {
      if (this.config.network) throw new Error(`No network config could be read from ${url}.`);
      return null; // an older relay without /network: the tab works without a ledger
    }
    try {
      return parseNetworkConfig(data);
    } catch (err) {
      if (err instanceof NetworkConfigError) throw new Error(`${url}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  private async startLedger(node: TabNode, slot: number) {
    const network = await this.loadNetworkConfig();
    if (!network) return;
    if (this.config.fault && network.profile !== 'test')
      throw new Error(`fault=${this.config.fault} is only allowed on a test network; this is ${network.networkId}.`);
    const ledger = new LedgerNode(node, this.key!, slot, network, (peer) => this.countRefusal(peer));
    ledger.rpc = (peer, protocol, method, params, onChunk) => this.call(peer, protocol, method, params, onChunk);
    ledger.directPeers = () => this.state.peers.filter((p) => p.direct).map((p) => p.peerId);
    ledger.addEventListener('change', () => this.update({ ledger: ledger.view }));
    this.firstReplay = new Promise((resolve) => {
      const onChange = () => {
        if (!ledger.view.snapshot) return;
        ledger.removeEventListener('change', onChange);
        resolve();
      };
      ledger.addEventListener('change', onChange);
    });
    this.ledger = ledger;
    await ledger.start();
  }

  /** The subnet this tab works on: the one serving the URL's model=, else the network's first. */
  get subnet() {
    const subnets = this.ledger?.config.subnets ?? [];
    return subnets.find((s) => s.model === this.config.model) ?? subnets[0] ?? null;
  }

  /** Register on the subnet unless this identity already holds a UID there (or a registration is under way). */
  private async ensureRegistered(role: 'miner' | 'validator') {
    const ledger = this.ledger;
    const subnet = this.subnet;
    if (!ledger || !subnet) return;
    await this.firstReplay;
    if (ledger.uidOn(subnet.netuid) !== null) return;
    await ledger.register(subnet.netuid, role);
  }

  /** What the Start button does: start the node and, for a miner, load and serve its model and register. */
  async startRole(): Promise<void> {
    if (this.state.status === 'idle') await this.start();
    else await this.ready;
    const role = this.config.role;
    if (role === 'miner') {
      if (this.state.miner.phase !== 'ready') await this.serveModel(this.config.model ?? this.subnet?.model);
      await this.ensureRegistered('miner');
    } else if (role === 'validator') {
      await this.startValidator();
    }
  }

  /** Load the subnet's model (to check answers against), register as a validator and start the loop. */
  async startValidator(): Promise<void> {
    const subnet = this.subnet;
    const ledger = this.ledger;
    if (!subnet || !ledger) throw new Error('Validating needs a network: this relay serves no network config.');
    if (!this.validator) {
      await loadModel(subnet.model, undefined, 'wasm'); // validation always runs on the pinned WASM path
      const fault = this.config.fault === 'copy-weights' ? 'copy-weights' : null;
      const validator = new Validator({
        ledger,
        subnet,
        self: this.node!.peerId.toString(),
        fault,
        infer: (peer, params, opts) => this.infer(peer, params, opts),
        generateLocally: (params) => this.generateLocally(params),
      });
      validator.addEventListener('change', () => this.update({ validator: validator.state }));
      this.validator = validator;
      this.update({ validator: validator.state });
    }
    await this.ensureRegistered('validator');
    this.validator.start();
  }

  get role(): NodeConfig['role'] {
    return this.config.role;
  }

  /** Choose what Start does (each page offers its own role); only before the node has started a role. */
  setRole(role: NodeConfig['role']) {
    if (this.config.role === role) return;
    if (this.state.miner.phase !== 'idle' || this.validator)
      throw new Error(`This tab already works as a ${this.config.role}; open another tab to be a ${role}.`);
    this.config.role = role;
    this.dispatchEvent(new Event('change'));
  }

  get devicePreference(): NodeConfig['device'] {
    return this.config.device;
  }

  /** Choose the model to mine with (the page's setting; the URL's model= is the default). */
  setModel(model: string | null) {
    this.config.model = model;
    this.dispatchEvent(new Event('change'));
  }

  /** Where hub models come from. */
  get hubHost(): string {
    return this.config.hub;
  }

  get modelPreference(): string | null {
    return this.config.model;
  }

  /** Choose the device for the next model load (the page's setting; the URL's device= is the default). */
  setDevicePreference(device: NodeConfig['device']) {
    this.config.device = device;
    this.dispatchEvent(new Event('change'));
  }

  /** The model to mine with: the URL's choice, else the best one the server has. */
  async defaultModel(): Promise<string> {
    if (this.config.model) return this.config.model;
    try {
      const res = await fetch('/models/available.json');
      const { models } = (await res.json()) as { models: string[] };
      const best = defaultGenerationPreference.find((id) => models.includes(id));
      if (best) return best;
    } catch {
      // No list (an unusual server): fall back to the model every install generates.
    }
    return 'webtensor/tiny-llama';
  }

  /** Load a catalogue model and serve it to peers over `/webtensor/infer/1`. */
  async serveModel(modelId?: string) {
    const id = modelId ?? (await this.defaultModel());
    const entry = findModel(id);
    this.servingModel = null;
    this.update({ miner: { ...this.state.miner, model: id, phase: 'verifying', ready: false, lastError: null } });
    try {
      if (!entry || entry.task !== 'text-generation')
        throw new Error(`"${id}" is not a text-generation model in the catalogue.`);
      const loaded = await loadModel(
        id,
        (p) =>
          this.update({
            miner: {
              ...this.state.miner,
              phase: p.phase === 'download' ? 'downloading' : p.phase === 'verify' ? 'verifying' : 'loading',
              progress: { loaded: p.loaded, total: p.total },
            },
          }),
        this.config.device,
        this.config.hub,
      );
      this.servingHash = await modelHash(entry);
      this.servingModel = id;
      this.update({
        miner: {
          ...this.state.miner,
          phase: 'ready',
          ready: true,
          device: loaded.device,
          deviceReason: loaded.reason,
        },
      });
      return loaded;
    } catch (err) {
      this.update({ miner: { ...this.state.miner, phase: 'error', lastError: (err as Error).message } });
      throw err;
    }
  }

  /** Generate on this tab's own worker (queued with the requests it serves). */
  async generateLocally(params: GenerateParams, onText?: (text: string) => unknown, signal?: AbortSignal) {
    const { value } = await this.queue.run(signal ?? new AbortController().signal, () =>
      generate(
        { prompt: params.prompt, maxNewTokens: params.maxNewTokens, sampling: params.sampling, stop: params.stop },
        onText,
      ),
    );
    return value;
  }

  /**
   * Ask a miner to generate. Text pieces arrive through `onText`; the signed final answer is checked (signer,
   * request id, output hash) before it is returned. Aborting `signal` cancels the miner's work.
   */
  async infer(
    peer: string,
    params: GenerateParams,
    opts: { onText?: (text: string) => void; signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<GenerateResult> {
    const req = await this.signedRequest('infer.generate', params as Json);
    const signal = AbortSignal.any([
      AbortSignal.timeout(opts.timeoutMs ?? 30_000),
      ...(opts.signal ? [opts.signal] : []),
    ]);
    let stream;
    try {
      stream = await this.node!.dialProtocol(peerIdFromString(peer), INFER_PROTOCOL, { signal });
    } catch (err) {
      throw new RpcError(signal.aborted ? 'timeout' : 'internal', `could not reach ${peer}: ${(err as Error).message}`);
    }
    let raw: Json;
    try {
      raw = await exchange(stream, [encodeFrame(req)], req.id, signal, (c) => {
        const text = (c as { text?: unknown } | null)?.text;
        if (typeof text === 'string') opts.onText?.(text);
      });
    } catch (err) {
      if (err instanceof RpcError) throw err;
      if (opts.signal?.aborted) throw new RpcError('cancelled', 'you cancelled the request');
      throw new RpcError(signal.aborted ? 'timeout' : 'internal', (err as Error).message);
    }
    const problem = await checkResult(raw, { miner: peer, requestId: req.id });
    if (problem) throw new RpcError('bad-frame', `the miner's answer was refused: ${problem}`);
    return raw as GenerateResult;
  }

  /** This node's key as a file to keep. */
  exportKey(): Blob {
    if (!this.key) throw new Error('Start the node first: there is no key yet.');
    return exportKey(this.key);
  }

  /** Replace this slot's identity with an imported key; it takes effect when the page reloads. */
  async importKey(bytes: Uint8Array): Promise<string> {
    if (!this.db) throw new Error('Start the node first, then import a key into its slot.');
    const key = await importKey(this.db, bytes);
    const { peerIdFromPrivateKey } = await import('@libp2p/peer-id');
    return peerIdFromPrivateKey(key).toString();
  }

  /** Build a signed request (exposed for diagnostics such as replay tests). */
  async signedRequest(method: string, params: Json): Promise<RpcRequest> {
    return signRequest(this.key!, {
      id: newRequestId(),
      method,
      params,
      ts: Date.now(),
      from: this.node!.peerId.toString(),
    });
  }

  /** Call `method` on a peer over a direct connection. Rejects with RpcError (code + sentence). */
  async rpc(
    peer: string,
    method: string,
    params: Json,
    opts: { timeoutMs?: number; onChunk?: (c: Json) => void } = {},
  ): Promise<Json> {
    const req = await this.signedRequest(method, params);
    return this.exchangeFrames(peer, [encodeFrame(req)], req.id, opts);
  }

  /** Send arbitrary frames (diagnostics: what does the peer answer to garbage?). */
  async exchangeFrames(
    peer: string,
    frames: Uint8Array[],
    id: string,
    opts: { timeoutMs?: number; onChunk?: (c: Json) => void; protocol?: string } = {},
  ): Promise<Json> {
    const signal = AbortSignal.timeout(opts.timeoutMs ?? 10_000);
    const stream = await this.node!.dialProtocol(peerIdFromString(peer), opts.protocol ?? RPC_PROTOCOL, { signal });
    try {
      return await exchange(stream, frames, id, signal, opts.onChunk);
    } catch (err) {
      if (err instanceof RpcError) throw err;
      throw new RpcError(signal.aborted ? 'timeout' : 'internal', (err as Error).message);
    }
  }

  /** A signed call of `method` on another protocol of the same envelope (sync). */
  async call(peer: string, protocol: string, method: string, params: Json, onChunk: (c: Json) => void) {
    const req = await this.signedRequest(method, params);
    return this.exchangeFrames(peer, [encodeFrame(req)], req.id, { onChunk, protocol, timeoutMs: 20_000 });
  }

  async stop(): Promise<void> {
    this.validator?.stop();
    this.ledger?.stop();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.node?.stop();
  }
}
