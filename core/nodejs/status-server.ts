/**
 * A headless node's HTTP status port: `/healthz` (200 `ok` once the node runs and holds its relay reservation,
 * else 503 with the reason), `/status` (who this node is on the network, as JSON) and `/metrics` (Prometheus
 * text). Everything is read from the node's stores when asked, so a scrape costs nothing between scrapes.
 */
import Fastify from 'fastify';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { uidOf } from '../../shared/ledger/snapshot.ts';
import type { Role } from '../config.ts';
import type { NodeServices, WebtensorNode } from '../node.ts';
import type { Roles } from '../roles.ts';
import { registerWalletRoutes } from './wallet-http.ts';

export interface StatusServerInit {
  host: string;
  /** 0: any free port (read it from `port` once started). */
  port: number;
  node: WebtensorNode;
  /** The node's roles, when something runs them: the role and the subnet come from there. */
  roles?: Roles;
  /** The token spending through /wallet needs (wallet-http.ts); null or absent: the wallet is read-only. */
  walletToken?: string | null;
}

export interface StatusServer {
  /** http://host:port, without a trailing slash. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** What `/status` answers. Stake is in rao, as a decimal string (it can exceed 2^53). */
export interface NodeStatusView {
  peerId: string | null;
  role: Role;
  /** The subnet the node works on (its role's), null without a network. */
  netuid: number | null;
  /** Its UID there; null until registered. */
  uid: number | null;
  stake: string;
  /** The model the node serves to peers, null when it serves none. */
  model: string | null;
  /** The network's current block, null without a network. */
  block: number | null;
  /** The last final epoch (-1 before any), null without a network. */
  lastFinal: number | null;
  /** The last epoch this node closed and its checkpoint roots (what every honest node agrees on), or null. */
  lastEpoch: { epoch: number; recordsRoot: string; stateRoot: string } | null;
  /** A miner's work: requests served, tokens, its queue, busy refusals and how its last request ended. */
  serving: {
    served: number;
    tokensServed: number;
    queueDepth: number;
    busyRefusals: number;
    lastRequest: { tokens: number; finish: string } | null;
  } | null;
  /** A validator's work: challenges sent, miners it found answering correctly, its last commit's epoch. */
  validator: {
    challenges: number;
    correctMiners: number;
    committedEpoch: number | null;
    /** Signed answers handed in to check (validator.audit): checked, found wrong, refused unchecked. */
    audits: { checked: number; wrong: number; refused: number };
    /** Stage-2 passes run (challenges and handed-in answers), failed, and their time in all. */
    deepChecks: { count: number; failed: number; ms: number };
    /** The last challenge that failed for a reason other than a wrong answer (a miner unreachable, this node). */
    lastError: string | null;
    /** Challenges answered through a forwarder, sent directly, and forwarders that failed (docs/validator.md 1a). */
    forwarding: { forwarded: number; direct: number; failed: number; lastFailure: string | null };
    /** Each miner as this validator sees it: score, challenges, answers audited in depth and proven wrong. */
    scores: {
      uid: number;
      hotkey: string;
      score: number;
      challenges: number;
      correct: number;
      audited: number;
      wrong: number;
      penaltyLeft: number;
      lastProblem: string | null;
      /** Its challenges answered through a forwarder, and forwarders that failed on it (never scored). */
      forwarded: number;
      forwardFailures: number;
    }[];
  } | null;
}

const ENDPOINTS = ['/healthz', '/status', '/metrics', '/wallet'];

/** Why the node is not healthy, as a sentence; null when it is. */
export function healthProblem(node: WebtensorNode): string | null {
  const { status, error } = node.status.get();
  if (status !== 'running') return error ? `The node failed: ${error}` : `The node is ${status}, not running.`;
  // Healthy while any of its relays holds its reservation (a node given several survives losing one).
  const relays = node.services.get()?.relays.map((r) => r.state.get()) ?? [];
  if (!relays.some((r) => r.reserved)) return relays[0]?.problem ?? 'The node holds no relay reservation.';
  return null;
}

/** The subnet the node works on: its role's if it has roles, else the one serving its model, else the first. */
function subnetOf(node: WebtensorNode, roles: Roles | undefined, services: NodeServices | null) {
  if (roles) return roles.subnet();
  const subnets = services?.ledger?.network.subnets ?? [];
  return subnets.find((s) => s.model === node.config.model) ?? subnets[0] ?? null;
}

export function readStatus(node: WebtensorNode, roles?: Roles): NodeStatusView {
  const services = node.services.get();
  const peerId = node.status.get().peerId;
  const ledger = services?.ledger ?? null;
  const snapshot = ledger?.consensus.snapshot.get() ?? null;
  const netuid = subnetOf(node, roles, services)?.netuid ?? null;
  const miner = services?.miner?.state.get();
  return {
    peerId,
    role: roles?.settings.get().role ?? node.config.role,
    netuid,
    uid: netuid !== null && peerId ? uidOf(snapshot, netuid, peerId) : null,
    stake: (peerId ? (snapshot?.stakes[peerId] ?? 0n) : 0n).toString(),
    model: miner?.phase === 'ready' ? miner.model : null,
    block: ledger ? ledger.consensus.block.get() : null,
    lastFinal: ledger ? ledger.finality.state.get().lastFinal : null,
    lastEpoch: lastEpochOf(snapshot),
    serving:
      miner && miner.phase !== 'idle'
        ? {
            served: miner.served,
            tokensServed: miner.tokensServed,
            queueDepth: miner.queueDepth,
            busyRefusals: miner.busyRefusals,
            lastRequest: miner.lastRequest,
          }
        : null,
    validator: validatorOf(roles),
  };
}

function lastEpochOf(snapshot: LedgerSnapshot | null): NodeStatusView['lastEpoch'] {
  const link = snapshot?.chain.at(-1);
  return link ? { epoch: link.epoch, recordsRoot: link.recordsRoot, stateRoot: link.stateRoot } : null;
}

function validatorOf(roles: Roles | undefined): NodeStatusView['validator'] {
  const state = roles?.validator.get()?.state.get();
  if (!state) return null;
  return {
    challenges: state.challenges,
    correctMiners: state.scores.filter((s) => s.correct > 0).length,
    committedEpoch: state.committed?.epoch ?? null,
    audits: state.audits,
    deepChecks: { ...state.deepChecks, ms: Math.round(state.deepChecks.ms) },
    lastError: state.lastError,
    forwarding: state.forwarding,
    // The fields this view promises, not whatever else the validator keeps per miner.
    scores: state.scores.map((s) => ({
      uid: s.uid,
      hotkey: s.hotkey,
      score: s.score,
      challenges: s.challenges,
      correct: s.correct,
      audited: s.audited,
      wrong: s.wrong,
      penaltyLeft: s.penaltyLeft,
      lastProblem: s.lastProblem,
      forwarded: s.forwarded,
      forwardFailures: s.forwardFailures,
    })),
  };
}

/**
 * A fresh registry per server (several nodes may share a process): the process's default metrics plus the
 * node's, each computed at scrape time. Counters mirror the totals the services keep.
 */
export function nodeMetrics(node: WebtensorNode, roles?: Roles): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const services = () => node.services.get();
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read());
      },
    });

  new Gauge({
    name: 'webtensor_node_info',
    help: 'Always 1; the labels say which node this is.',
    labelNames: ['peer_id', 'role', 'network'],
    registers,
    collect() {
      this.reset();
      const { peerId, role } = readStatus(node, roles);
      this.set({ peer_id: peerId ?? '', role, network: services()?.ledger?.network.networkId ?? '' }, 1);
    },
  });
  gauge('webtensor_node_up', '1 when the node runs and holds a relay reservation.', () =>
    healthProblem(node) === null ? 1 : 0,
  );
  new Gauge({
    name: 'webtensor_node_peers',
    help: 'Connected peers (the relay aside), by link: direct or relayed.',
    labelNames: ['link'],
    registers,
    collect() {
      const peers = services()?.peers.peers.get() ?? [];
      const direct = peers.filter((p) => p.direct).length;
      this.set({ link: 'direct' }, direct);
      this.set({ link: 'relayed' }, peers.length - direct);
    },
  });
  gauge('webtensor_node_records', 'Ledger records stored.', () => services()?.ledger?.book.state.get().records ?? 0);
  gauge(
    'webtensor_node_block',
    "The network's current block (-1 without a network).",
    () => readStatus(node, roles).block ?? -1,
  );
  gauge(
    'webtensor_node_last_final_epoch',
    'The last final epoch (-1 before any, or without a network).',
    () => readStatus(node, roles).lastFinal ?? -1,
  );
  gauge('webtensor_node_registered', '1 when the node holds a UID on its subnet.', () =>
    readStatus(node, roles).uid === null ? 0 : 1,
  );
  gauge(
    'webtensor_node_replay_seconds',
    'How long the last ledger replay took.',
    () => (services()?.ledger?.consensus.snapshot.get()?.ms ?? 0) / 1000,
  );
  counter('webtensor_node_rpc_refusals_total', 'Requests, records and frames refused from peers.', () =>
    Object.values(services()?.rpc.refusals.get() ?? {}).reduce((a, b) => a + b, 0),
  );
  counter(
    'webtensor_node_records_refused_total',
    'Records refused on arrival.',
    () => services()?.ledger?.book.state.get().refused ?? 0,
  );
  counter(
    'webtensor_node_syncs_total',
    'Completed ledger syncs with peers.',
    () => services()?.ledger?.sync.syncs.get() ?? 0,
  );
  counter(
    'webtensor_node_relay_reconnects_total',
    'Times the relay link went down and was dialled again.',
    () => services()?.relay.state.get().reconnects ?? 0,
  );
  counter(
    'webtensor_node_dial_failures_total',
    'Failed dials to peers.',
    () => services()?.discovery.state.get().dialFailures ?? 0,
  );
  counter(
    'webtensor_node_inference_served_total',
    'Inference requests served as a miner.',
    () => services()?.miner?.state.get().served ?? 0,
  );
  counter(
    'webtensor_node_inference_busy_total',
    'Inference requests refused because the queue was full.',
    () => services()?.miner?.state.get().busyRefusals ?? 0,
  );
  return registry;
}

export async function startStatusServer(init: StatusServerInit): Promise<StatusServer> {
  const { node, roles } = init;
  const registry = nodeMetrics(node, roles);
  const app = Fastify({ logger: false });

  app.get('/healthz', async (_request, reply) => {
    const problem = healthProblem(node);
    if (problem === null) return reply.type('text/plain; charset=utf-8').send('ok');
    return reply.code(503).send({ status: 'unavailable', reason: problem });
  });
  app.get('/status', async () => readStatus(node, roles));
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  registerWalletRoutes(app, node, init.walletToken ?? null);
  // Fastify answers any unrouted method or path here: a known path with another method is a 405.
  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    if (ENDPOINTS.includes(path))
      return reply
        .code(405)
        .header('allow', 'GET, HEAD')
        .send({ error: 'method-not-allowed', message: `${path} answers GET only, not ${request.method}.` });
    return reply
      .code(404)
      .send({ error: 'not-found', path, message: `Nothing at ${path}; try ${ENDPOINTS.join(', ')}.` });
  });

  await app.listen({ host: init.host, port: init.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : init.port;
  const host = init.host.includes(':') ? `[${init.host}]` : init.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () => app.close(),
  };
}
