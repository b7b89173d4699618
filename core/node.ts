/**
 * A webtensor node, the same in a tab and in Node: it claims an identity, starts libp2p and the services in
 * dependency order (each gets what it needs at construction), and stops them in reverse. Pages and the CLI read
 * its stores and call its intents; nothing reaches into a service's internals.
 *
 *   identity → libp2p → rpc · peers · relay link → discovery · diagnostics · announcements · client · auditor
 *            · forwarder
 *            → network config → ledger (book, gossip, sync, consensus, agreement, registration)
 *            → miner (where the platform has an inference engine) → blobs → batch jobs (client; miner and
 *              auditor started by Roles) → validator (on demand)
 */
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { NodeError } from '../shared/errors.ts';
import type { NodeConfig } from './config.ts';
import { PeerBans } from './peer-bans.ts';
import { LedgerServices } from './ledger.ts';
import { loadNetworkConfig } from './network-config.ts';
import type { Identity, Libp2pNode, Platform } from './platform.ts';
import { Announcements } from './services/announce.ts';
import { Auditor } from './services/auditor.ts';
import { Blobs } from './services/blobs.ts';
import { Client } from './services/client.ts';
import { Diagnostics } from './services/diagnostics.ts';
import { Discovery } from './services/discovery.ts';
import { Forwarder } from './services/forward.ts';
import { JobClient } from './services/job-client.ts';
import { JobMiner } from './services/job-miner.ts';
import { jobLedgerOf } from './services/jobs.ts';
import { Miner } from './services/miner.ts';
import { PeerTable } from './services/peers.ts';
import { RelayLink, resolveRelay } from './services/relay-link.ts';
import { RpcRouter } from './services/rpc.ts';
import { Store } from './store.ts';

export interface NodeStatus {
  status: 'idle' | 'starting' | 'running' | 'error';
  /** What went wrong, as a sentence; null when nothing did. */
  error: string | null;
  slot: number | null;
  peerId: string | null;
}

/** Everything a started node runs. `ledger` is null when the relay serves no network config. */
export interface NodeServices {
  peerId: string;
  identity: Identity;
  key: PrivateKey;
  libp2p: Libp2pNode;
  rpc: RpcRouter;
  peers: PeerTable;
  /** The first relay (the one the network config came from). */
  relay: RelayLink;
  /** Every relay this node holds a reservation on, the first included. */
  relays: RelayLink[];
  discovery: Discovery;
  diagnostics: Diagnostics;
  announcements: Announcements;
  client: Client;
  /** Hands answers this node got to validators to check (the Ask page's opt-in; the gateway's sample). */
  auditor: Auditor;
  /** Sends permitted validators' requests to miners from this node's key (`/webtensor/forward/1`). */
  forwarder: Forwarder;
  ledger: LedgerServices | null;
  /** Null where the platform cannot run models. */
  miner: Miner | null;
  /** Files off the ledger (`/webtensor/blobs/1`); null where the platform keeps none. */
  blobs: Blobs | null;
  /** Batch jobs (docs/jobs.md): null without a network or blobs. The validator's auditor is made by Roles. */
  jobs: JobServices | null;
}

export interface JobServices {
  /** Open, follow, cancel jobs and collect their results. */
  client: JobClient;
  /** Claims shards and publishes results: started by Roles when the node mines; null without a miner. */
  miner: JobMiner | null;
}

export class WebtensorNode {
  readonly status = new Store<NodeStatus>({ status: 'idle', error: null, slot: null, peerId: null });
  /** Null until `start` has built them. */
  readonly services = new Store<NodeServices | null>(null);
  /** Resolves once the node holds a relay reservation, whoever started it; rejects if starting failed. */
  readonly ready: Promise<NodeServices>;
  private starting: Promise<NodeServices> | null = null;
  private readonly settle: { resolve(s: NodeServices): void; reject(err: unknown): void };

  constructor(
    readonly config: NodeConfig,
    readonly platform: Platform,
  ) {
    let settle!: typeof this.settle;
    this.ready = new Promise<NodeServices>((resolve, reject) => (settle = { resolve, reject }));
    this.settle = settle;
    this.ready.catch(() => {}); // reported through `status`; callers that await it see the error
  }

  /** Start the node; resolves once it holds a relay reservation. Safe to call more than once. */
  start(): Promise<NodeServices> {
    this.starting ??= this.build().then(
      (services) => {
        this.settle.resolve(services);
        return services;
      },
      (err: unknown) => {
        this.status.update({ status: 'error', error: (err as Error).message });
        this.settle.reject(err);
        throw err;
      },
    );
    return this.starting;
  }

  private async build(): Promise<NodeServices> {
    const { config, platform } = this;
    this.status.update({ status: 'starting' });
    const identity = await platform.claimIdentity();
    const key = await identity.loadOrCreateKey();
    const peerId = peerIdFromPrivateKey(key).toString();
    this.status.update({ slot: identity.slot, peerId });
    const relayAddresses = await Promise.all([config.relay, ...(config.moreRelays ?? [])].map(resolveRelay));
    const network = await loadNetworkConfig(config);
    if (config.fault && network?.profile !== 'test')
      throw new NodeError(
        'bad-config',
        `fault=${config.fault} is only allowed on a test network; this is ${network?.networkId ?? 'no network'}.`,
      );
    // Peers hung up on for flooding stay away for a while (gossipsub alone forgets their score on reconnect).
    const bans = new PeerBans();
    const libp2p = await platform.createLibp2p(key, relayAddresses.length, bans);
    const clock = platform.clock;
    const relays = relayAddresses.map((address) => new RelayLink({ libp2p }, address));
    const relay = relays[0]!;
    const peers = new PeerTable({ libp2p, relayPeers: relays.map((r) => r.peer) });
    const discovery = new Discovery({ libp2p, relays, peers, platform });
    // Requests to a peer outside the few this node keeps (a chosen miner) connect on demand.
    const rpc = new RpcRouter({ libp2p, key, clock, reach: discovery });
    const diagnostics = new Diagnostics({ libp2p, rpc, peers, slot: identity.slot });
    const announcements = new Announcements({ libp2p, rpc, clock });
    let ledger: LedgerServices | null = null;
    if (network) {
      const { store, consensus: engine } = await platform.openLedger(identity, network.networkId);
      const archive = config.archive;
      ledger = new LedgerServices({ libp2p, key, network, store, engine, clock, rpc, peers, bans, archive });
    }
    const client = new Client({ rpc, peers, snapshot: ledger?.consensus.snapshot ?? null });
    // Every answer offered is handed in: whoever offers decides which (a user's opt-in, a gateway's sample).
    const auditor = new Auditor({ rpc, snapshot: ledger?.consensus.snapshot ?? null }, { rate: 1 });
    // Every node with a client forwards validators' challenges, so a miner cannot tell them from users' requests.
    const forwarder = new Forwarder({
      rpc,
      client,
      snapshot: ledger?.consensus.snapshot ?? null,
      subnets: ledger?.network.subnets ?? [],
      self: peerId,
    });
    const miner = platform.inference
      ? new Miner(
          {
            engine: platform.inference,
            rpc,
            key,
            availableModels: () => platform.availableModels(),
            isValidator: (peer) =>
              ledger?.consensus.snapshot
                .get()
                ?.subnets.some((s) => s.uids.some((u) => u.hotkey === peer && u.role === 'validator')) ?? false,
          },
          { fault: config.fault, hub: config.hub },
        )
      : null;

    const blobStore = (await platform.openBlobs?.(identity)) ?? null;
    const blobs = blobStore ? new Blobs({ rpc, store: blobStore }) : null;
    let jobs: JobServices | null = null;
    if (ledger && blobs) {
      // What the job client keeps across restarts (docs/jobs.md, "The services").
      const memory = await platform.openJobMemory?.(identity, ledger.network.networkId);
      const view = { ...jobLedgerOf(ledger), blobs };
      jobs = { client: new JobClient({ ...view, memory }), miner: miner ? new JobMiner({ ...view, miner }) : null };
    }

    await diagnostics.start();
    await forwarder.start();
    await miner?.start();
    await blobs?.start();
    peers.start();
    announcements.start();
    for (const r of relays) r.start();
    discovery.start();
    await ledger?.start();
    jobs?.client.start();
    const services: NodeServices = {
      peerId,
      identity,
      key,
      libp2p,
      rpc,
      peers,
      relay,
      relays,
      discovery,
      diagnostics,
      announcements,
      client,
      auditor,
      forwarder,
      ledger,
      miner,
      blobs,
      jobs,
    };
    this.services.set(services);
    // Running once any relay holds our reservation (with several, one may be down).
    await Promise.any(relays.map((r) => r.reserved()));
    this.status.update({ status: 'running', error: null });
    return services;
  }

  async stop(): Promise<void> {
    const s = this.services.get();
    if (!s) return;
    s.auditor.stop();
    s.jobs?.miner?.stop();
    s.jobs?.client.stop();
    s.blobs?.stop();
    s.ledger?.stop();
    s.discovery.stop();
    for (const r of s.relays) r.stop();
    s.announcements.stop();
    s.peers.stop();
    await s.libp2p.stop();
    this.status.update({ status: 'idle' });
  }
}
