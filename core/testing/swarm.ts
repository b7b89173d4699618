/**
 * A swarm: `count` real headless nodes (the node core on the Node platform, each with its own key, libp2p and
 * ledger) in one process, for scale tests and the p2p benchmark. Run as a process:
 *
 *   node --import tsx core/testing/swarm.ts --relay <health url> --count 10 --port 9850 [--no-listener]
 *
 * It prints `{"swarm":"ready",...}` once every node has started, and answers on 127.0.0.1:<port>:
 *   GET  /stats                 every node: peer id, direct peers, connections, records, the last closed epochs' roots
 *   POST /publish?node=k        node k signs a faucet claim and publishes it; answers { id, at } (ms since epoch)
 *   GET  /arrivals?id=<id>      for every node, when it stored that record (ms since epoch) or null
 * SIGTERM stops every node.
 */
import '../../shared/polyfills.ts';
import { createServer } from 'node:http';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { clientConfig } from '../config.ts';
import { WebtensorNode } from '../node.ts';
import { createNodePlatform } from '../nodejs/platform.ts';
import { recordId } from '../../shared/ledger/records.ts';
import { TOPICS } from '../../shared/names.ts';
import { epochAgreement } from '../services/finality.ts';

const { values } = parseArgs({
  options: {
    relay: { type: 'string' },
    count: { type: 'string', default: '10' },
    port: { type: 'string', default: '0' },
    'no-listener': { type: 'boolean', default: false },
  },
});
if (!values.relay) throw new Error('--relay <health url> is required');
const count = Number(values.count);
const dir = await mkdtemp(join(tmpdir(), 'swarm-'));
const arrivals: Map<string, number>[] = [];
const nodes: WebtensorNode[] = [];

const started = Date.now();
for (let k = 0; k < count; k++) {
  const node = new WebtensorNode(
    clientConfig({ healthUrl: values.relay }),
    createNodePlatform({ dataDir: join(dir, `node-${k}`), noListener: values['no-listener'] }),
  );
  nodes.push(node);
  arrivals.push(new Map());
}
// Start them together, as a fleet coming up would.
await Promise.all(
  nodes.map(async (node, k) => {
    const services = await node.start();
    services.ledger!.book.onStored((records) => {
      const now = Date.now();
      for (const r of records) {
        const id = recordId(r);
        if (!arrivals[k]!.has(id)) arrivals[k]!.set(id, now);
      }
    });
  }),
);

function stats() {
  return nodes.map((node) => {
    const s = node.services.get()!;
    const snapshot = s.ledger!.consensus.snapshot.get();
    return {
      peerId: s.peerId,
      relays: s.relays.map((r) => {
        const { reserved, reconnects, problem } = r.state.get();
        return { reserved, reconnects, problem };
      }),
      discovery: s.discovery.describe(),
      direct: s.peers.peers.get().filter((p) => p.direct).length,
      connections: s.libp2p.getConnections().length,
      // gossipsub's view of the records topic: who subscribes, and whom this node forwards to.
      gossip: (() => {
        const topic = TOPICS.records(s.ledger!.network.networkId);
        const pubsub = s.libp2p.services.pubsub;
        // (The mesh is the implementation's; the GossipSub interface does not expose it.)
        const mesh = (pubsub as unknown as { getMeshPeers(t: string): string[] }).getMeshPeers(topic).length;
        return { subscribers: pubsub.getSubscribers(topic).length, mesh };
      })(),
      records: s.ledger!.book.state.get().records,
      // How records arrived or were turned away: by gossip (accepted, ignored, rejected), refused, and syncs done.
      arrival: {
        ...s.ledger!.gossip.counts,
        refused: s.ledger!.book.state.get().refused,
        lastRefused: s.ledger!.book.state.get().lastRefused,
        syncs: s.ledger!.sync.syncs.get(),
      },
      block: s.ledger!.consensus.currentBlock(),
      lastFinal: snapshot?.lastFinal ?? -1,
      epochs: epochAgreement(snapshot, 1)
        .slice(-6)
        .map((e) => `${e.epoch}:${e.recordsRoot}:${e.stateRoot}`),
    };
  });
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://swarm');
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  void (async () => {
    if (req.method === 'GET' && url.pathname === '/stats') return reply(200, stats());
    if (req.method === 'POST' && url.pathname === '/publish') {
      const node = nodes[Number(url.searchParams.get('node') ?? '0')];
      if (!node) return reply(400, { error: 'no such node' });
      const at = Date.now();
      const record = await node.services.get()!.ledger!.book.publish('faucet.claim', { amount: '1000' });
      return reply(200, { id: recordId(record), at });
    }
    if (req.method === 'GET' && url.pathname === '/arrivals') {
      const id = url.searchParams.get('id') ?? '';
      return reply(
        200,
        arrivals.map((a) => a.get(id) ?? null),
      );
    }
    reply(404, { error: `no ${url.pathname}` });
  })().catch((err: unknown) => reply(500, { error: (err as Error).message }));
});
server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address() as { port: number };
  console.log(JSON.stringify({ swarm: 'ready', count, port: address.port, ms: Date.now() - started }));
});

process.on('SIGTERM', () => {
  server.close();
  void Promise.all(nodes.map((n) => n.stop())).finally(() => process.exit(0));
});
