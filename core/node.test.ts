/**
 * The node core in Node: a real relay and real nodes in one process, talking the same protocols tabs do. They
 * connect directly, a record travels by gossip, a late node gets it by sync, a restart keeps the peer id, and
 * everything stops cleanly.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientConfig } from './config.ts';
import { WebtensorNode } from './node.ts';
import { createNodePlatform } from './nodejs/platform.ts';
import { PROTOCOLS, TOPICS } from '../shared/names.ts';
import { SPENT_CIRCUIT_MS } from './services/discovery.ts';
import { waitFor } from './store.ts';
import { startInProcessRelay, type InProcessRelay } from './testing/in-process-relay.ts';

let relay: InProcessRelay;
let dir: string;
const nodes: WebtensorNode[] = [];

beforeAll(async () => {
  relay = await startInProcessRelay();
  dir = await mkdtemp(join(tmpdir(), 'webtensor-nodes-'));
});

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await relay.stop();
  await rm(dir, { recursive: true, force: true });
});

function newNode(name: string, noListener = false, relays: InProcessRelay[] = [relay]): WebtensorNode {
  const config = {
    ...clientConfig({ healthUrl: relays[0]!.healthUrl }),
    moreRelays: relays.slice(1).map((r) => ({ healthUrl: r.healthUrl })),
  };
  const node = new WebtensorNode(config, createNodePlatform({ dataDir: join(dir, name), noListener }));
  nodes.push(node);
  return node;
}

const timeout = (ms: number) => AbortSignal.timeout(ms);

describe('the node core in Node', () => {
  it('connects two nodes directly, gossips a record, syncs it to a late node and keeps its key', async () => {
    const a = await newNode('a').start();
    const b = await newNode('b').start();
    expect(a.ledger?.network.profile).toBe('test');

    // Both hold a reservation and find each other through the relay's peer list; the connection is direct.
    await waitFor(a.peers.peers, (ps) => ps.some((p) => p.peerId === b.peerId && p.direct), timeout(20_000));
    await waitFor(b.peers.peers, (ps) => ps.some((p) => p.peerId === a.peerId && p.direct), timeout(20_000));

    // Once A knows B subscribes to the records topic, a record A publishes reaches B by gossip (a funded one:
    // admission keeps unfunded spends out).
    const topic = TOPICS.records(a.ledger!.network.networkId);
    while (!a.libp2p.services.pubsub.getSubscribers(topic).some((p) => p.toString() === b.peerId))
      await new Promise((r) => setTimeout(r, 50));
    const record = await a.ledger!.book.publish('faucet.claim', { amount: '1000' });
    await waitFor(
      b.ledger!.book.recent,
      (rows) => rows.some((r) => r.record.sig === record.sig && r.source === `gossip:${a.peerId}`),
      timeout(10_000),
    );

    // A node that starts later has missed the gossip: sync brings the record.
    const c = await newNode('c').start();
    await waitFor(
      c.ledger!.book.recent,
      (rows) => rows.some((r) => r.record.sig === record.sig && r.source.startsWith('sync:')),
      timeout(30_000),
    );
    expect(c.ledger!.book.state.get().refused).toBe(0);

    // Every node replays the same records to the same state.
    const replays = await Promise.all([a, b, c].map((s) => s.ledger!.consensus.replayNow()));
    expect(new Set(replays.map((r) => r.records)).size).toBe(1);
    expect(replays.map((r) => r.balances[b.peerId] ?? 0n)).toEqual(
      replays.map(() => replays[0]!.balances[b.peerId] ?? 0n),
    );

    // Restarting A from the same data directory gives the same peer id.
    const before = a.peerId;
    await nodes[0]!.stop();
    const again = await newNode('a').start();
    expect(again.peerId).toBe(before);
  }, 90_000);

  it('two nodes without listeners (behind NAT) connect directly over WebRTC signalled by the relay', async () => {
    const a = await newNode('nat-a', true).start();
    const b = await newNode('nat-b', true).start();
    await waitFor(a.peers.peers, (ps) => ps.some((p) => p.peerId === b.peerId && p.direct), timeout(30_000));
    const conns = a.libp2p.getConnections().filter((c) => c.remotePeer.toString() === b.peerId);
    // Direct means a WebRTC connection, not a relayed (limited) one.
    expect(conns.some((c) => c.remoteAddr.toString().includes('/webrtc') && !c.limits)).toBe(true);
    expect(await a.rpc.call(b.peerId, 'node.echo', 'over webrtc', { protocol: PROTOCOLS.rpc })).toBe('over webrtc');
    // The relayed connection that carried the signalling is closed once spent, on both sides (libp2p would keep
    // it for the relay's two-minute limit, counting against the connection bound).
    const circuits = (n: typeof a, peer: string) =>
      n.libp2p.getConnections().filter((c) => c.remotePeer.toString() === peer && c.limits != null).length;
    for (let waited = 0; circuits(a, b.peerId) + circuits(b, a.peerId) > 0; waited += 500) {
      expect(waited).toBeLessThan(SPENT_CIRCUIT_MS + 10_000);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(a.discovery.describe().closedCircuits + b.discovery.describe().closedCircuits).toBeGreaterThan(0);
  }, 60_000);

  it('a node whose relay connection keeps its status but loses its muxer drops it and dials the relay again', async () => {
    const node = await newNode('zombie', true).start();
    const link = node.relays[0]!;
    await link.reserved(timeout(20_000));
    const before = node.libp2p.getConnections().find((c) => c.remotePeer.toString() === link.peer)!;
    // The state libp2p can leave a connection in: the muxer closed, the connection still listed as open and no
    // peer:disconnect, so every stream to the relay fails.
    (before as unknown as { muxer: { abort(err: Error): void } }).muxer.abort(new Error('muxer gone'));
    expect(before.status).toBe('open');
    await waitFor(link.state, (s) => s.reconnects > 0, timeout(20_000));
    expect(link.state.get().problem).toMatch(/The connection to the relay is dead/);
    expect(before.status).not.toBe('open');
    // A new connection, a reservation on it, and peer lists again.
    await link.reserved(timeout(20_000));
    const after = node.libp2p.getConnections().find((c) => c.remotePeer.toString() === link.peer)!;
    expect(after.id).not.toBe(before.id);
    await waitFor(node.discovery.state, (s) => s.lastError === null && s.lastList !== null, timeout(20_000));
    // The relay holds a reservation for it again (not only the node's own belief): peers can reach it.
    const reservations = relay.node.services.relay.reservations;
    for (let waited = 0; !reservations.has(node.libp2p.peerId); waited += 250) {
      expect(waited, 'the relay holds no reservation for the node after its redial').toBeLessThan(10_000);
      await new Promise((r) => setTimeout(r, 250));
    }
    // ... and it keeps it (the reservation is on the new connection, not the one that went).
    await new Promise((r) => setTimeout(r, 2000));
    expect(reservations.has(node.libp2p.peerId)).toBe(true);
  }, 60_000);

  it('a node given two relays holds both reservations, and when one goes, peers still find it through the other', async () => {
    const second = await startInProcessRelay();
    try {
      const both = await newNode('both', false, [relay, second]).start();
      await Promise.all(both.relays.map((r) => r.reserved(timeout(20_000))));
      // A node that knows only the second relay finds it there.
      const onlySecond = await newNode('only-second', true, [second]).start();
      await waitFor(
        onlySecond.peers.peers,
        (ps) => ps.some((p) => p.peerId === both.peerId && p.direct),
        timeout(30_000),
      );
      // The first relay goes away: the node stays up on the second, and a newcomer of the second still finds it.
      await relay.stop();
      await waitFor(both.relays[0]!.state, (s) => !s.reserved, timeout(20_000));
      expect(both.relays[1]!.state.get().reserved).toBe(true);
      const late = await newNode('late-second', true, [second]).start();
      await waitFor(late.peers.peers, (ps) => ps.some((p) => p.peerId === both.peerId && p.direct), timeout(30_000));
    } finally {
      await second.stop();
    }
  }, 90_000);
});

describe('a network larger than the peer list', () => {
  it('keeps a connection to a peer the sampled list leaves out, even while that peer is slow to answer pings', async () => {
    // A list of one peer at a time: every other connected peer is missing from it.
    const sampling = await startInProcessRelay('test', ['--peer-sample', '1']);
    try {
      const [a, b] = await Promise.all(
        ['sample-a', 'sample-b', 'sample-c', 'sample-d'].map((name) => newNode(name, false, [sampling]).start()),
      );
      await waitFor(a!.peers.peers, (ps) => ps.some((p) => p.peerId === b!.peerId && p.direct), timeout(30_000));
      // B stops answering pings (as a peer busy on a loaded machine does): its ping streams open and stay silent.
      const pingProtocol = '/ipfs/ping/1.0.0';
      await b!.libp2p.unhandle(pingProtocol);
      await b!.libp2p.handle(pingProtocol, () => {});
      // Several polls later, each listing one of B, C and D: A still holds B. (A peer missing from a complete list
      // that does not answer is dropped: e2e/mesh.spec.ts, a tab that closes.)
      let hungUp = 0;
      a!.libp2p.addEventListener('peer:disconnect', (e) => void (e.detail.toString() === b!.peerId && hungUp++));
      const polls = a!.discovery.state.get().lastList?.at ?? 0;
      await new Promise((r) => setTimeout(r, 12_000));
      expect(a!.discovery.state.get().lastList!.at).toBeGreaterThan(polls);
      expect(hungUp).toBe(0);
      expect(a!.peers.peers.get().some((p) => p.peerId === b!.peerId && p.direct)).toBe(true);
    } finally {
      await sampling.stop();
    }
  }, 90_000);
});

describe('a connection that stops opening streams', () => {
  it('is aborted by a call that cannot open a stream on it in half its time, and the call goes through a new one', async () => {
    const own = await startInProcessRelay();
    try {
      const [a, b] = await Promise.all(['stuck-a', 'stuck-b'].map((name) => newNode(name, false, [own]).start()));
      await waitFor(a!.peers.peers, (ps) => ps.some((p) => p.peerId === b!.peerId && p.direct), timeout(30_000));
      // What a WebRTC connection whose data channels no longer open looks like to libp2p: listed open, and every
      // new stream waits until its caller gives up.
      const [stuck] = a!.libp2p.getConnections(b!.libp2p.peerId);
      (stuck as unknown as { newStream: (p: string[], o: { signal: AbortSignal }) => Promise<never> }).newStream = (
        _,
        { signal },
      ) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error(''))));
      const answer = await a!.rpc.call(b!.peerId, 'node.echo', 'through a new connection', {
        protocol: PROTOCOLS.rpc,
        timeoutMs: 8000,
      });
      expect(answer).toBe('through a new connection');
      expect(a!.rpc.brokenConnections).toBe(1);
      expect(stuck!.status).not.toBe('open');
    } finally {
      await own.stop();
    }
  }, 60_000);
});
