/**
 * Joining from a checkpoint, service against service: a real Sync serves `sync.join` and `sync.state` from a
 * real store and the real replay; a real Join on another node fetches, checks and installs the base. Only the
 * transport is a fake (requests go from one router straight to the other's handlers, chunks through JSON as on the
 * wire), so a test can also play a peer that lies.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { epochBlocks } from '../../shared/ledger/config.ts';
import { linkHash, replay, type StoredRecord } from '../../shared/ledger/replay.ts';
import { snapshotOf, type LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { stateRoot } from '../../shared/ledger/state.ts';
import { actor, joinableNetwork, smallConfig, type Actor } from '../../shared/ledger/testing.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import { MemoryLedgerStore } from '../memory-ledger-store.ts';
import { Store } from '../store.ts';
import { FakeClock, FakePeerTable, FakeRpcRouter, GENESIS_MS, rowOf } from '../testing/fakes.ts';
import { FinalRecordSets } from './final-sets.ts';
import { Join } from './join.ts';
import type { RecordBook } from './record-book.ts';
import { Sync } from './sync.ts';

const config = smallConfig({ genesisMs: GENESIS_MS });
const T = epochBlocks(config);
const NOW = 8 * T;
let records: StoredRecord[];
let full: ReturnType<typeof replay>;
let server: Actor;

const snap = (rows: readonly StoredRecord[], base?: Parameters<typeof replay>[3]): LedgerSnapshot =>
  snapshotOf(replay(config, rows, NOW, base), rows.length, NOW, 0);

beforeAll(async () => {
  records = (await joinableNetwork(config)).records;
  full = replay(config, records, NOW);
  server = await actor();
});

/** A node serving `held` through a real Sync; `tamper` rewrites each chunk it sends (a lying peer). */
async function servingPeer(held: readonly StoredRecord[], tamper: (method: string, chunk: Json) => Json = (_, c) => c) {
  const store = new MemoryLedgerStore();
  await store.put(held.map((r) => rowOf(r)));
  const clock = new FakeClock(GENESIS_MS + NOW * config.blockMs);
  const rpc = new FakeRpcRouter(server.key, clock);
  const sync = new Sync({
    store,
    book: { network: config } as RecordBook, // the server side reads only the network
    rpc,
    peers: new FakePeerTable(),
    snapshot: new Store<LedgerSnapshot | null>(snap(held)),
    finalSets: new FinalRecordSets(),
  });
  await sync.start();
  sync.stop(); // no timers: this test drives every call
  const methods = rpc.served.get(PROTOCOLS.sync)!.methods;
  return async (method: string, params: Json, onChunk?: (c: Json) => void): Promise<Json> => {
    const m = methods[method]!;
    const refused = m.check?.(params);
    if (refused) throw new Error(refused);
    return m.run(params, {
      peer: 'joiner',
      requestId: 'r1',
      signal: new AbortController().signal,
      emit: async (c) => onChunk?.(JSON.parse(JSON.stringify(tamper(method, c))) as Json),
    });
  };
}

type Peer = Awaited<ReturnType<typeof servingPeer>>;

/**
 * A node holding `held` (a fresh one: nothing) that joins through `peer` ('server'). Its other direct peer,
 * 'witness', serves the honest chain unless told otherwise (null: it has no other peer).
 */
async function joiningNode(
  peer: Peer,
  options: {
    witness?: Peer | null;
    /** Connect the witness only this many ms after the start. */
    witnessLater?: number;
    held?: readonly StoredRecord[];
    init?: ConstructorParameters<typeof Join>[1];
  } = {},
) {
  const witness = options.witness === undefined ? await servingPeer(records) : options.witness;
  const me = await actor();
  const store = new MemoryLedgerStore();
  await store.put((options.held ?? []).map((r) => rowOf(r)));
  const clock = new FakeClock(GENESIS_MS + NOW * config.blockMs);
  const rpc = new FakeRpcRouter(me.key, clock);
  const routes: Record<string, Peer | null> = { server: peer, witness };
  rpc.answer = async (to, request, opts) => {
    const route = routes[to];
    if (!route) throw new Error(`no route to ${to}`);
    return route(request.method, request.params, opts.onChunk);
  };
  const peers = new FakePeerTable(witness && !options.witnessLater ? ['server', 'witness'] : ['server']);
  if (witness && options.witnessLater) setTimeout(() => peers.connect('witness'), options.witnessLater);
  const snapshot = new Store<LedgerSnapshot | null>(null);
  const replayNow = async () => {
    const rows = (await store.all()).map((r) => ({ id: r.id, record: r.record }));
    snapshot.set(snap(rows, (await store.base()) ?? undefined));
  };
  await replayNow();
  let heads = 0;
  const book = { network: config, reloadHead: async () => void heads++ };
  const join = new Join({ rpc, peers, store, book, snapshot, replayNow, clock }, options.init ?? {});
  return { join, store, snapshot, heads: () => heads };
}

describe('joining from a checkpoint', () => {
  it("a fresh node starts from the peer's last voted-final state and, with the records after it, agrees", async () => {
    const peer = await servingPeer(records);
    const node = await joiningNode(peer);
    expect(await node.join.maybeJoin('server')).toBe(true);

    const S = full.lastVotedFinal;
    const last = node.join.state.get().last!;
    expect(last).toMatchObject({ epoch: S, from: 'server', links: S + 1 });
    const base = (await node.store.base())!;
    expect(base.epoch).toBe(S);
    expect(base.votes.length).toBeGreaterThanOrEqual(2 * (S - 1)); // both validators' votes on epochs 1..S
    expect(node.heads()).toBe(1); // its own chain continues after what the base says it signed

    // Then it syncs the records after the base as usual; its replay reaches what the full replay reaches.
    await node.store.put(records.filter((r) => r.record.block >= (S + 1) * T).map((r) => rowOf(r)));
    const rows = (await node.store.all()).map((r) => ({ id: r.id, record: r.record }));
    const joined = replay(config, rows, NOW, base);
    expect(joined.chain.map((l) => linkHash(config.networkId, l))).toEqual(
      full.chain.map((l) => linkHash(config.networkId, l)),
    );
    expect(stateRoot(joined.state)).toBe(stateRoot(full.state));
    expect(rows.length).toBeLessThan(records.length); // it never held the history before the base
  });

  it('refuses a state that is not the one the checkpoint names, and keeps no base', async () => {
    const peer = await servingPeer(records, (method, c) =>
      method === 'sync.state' && typeof c === 'string' ? c.replace('"dust":"', '"dust":"9') : c,
    );
    const node = await joiningNode(peer);
    expect(await node.join.maybeJoin('server')).toBe(false);
    expect(node.join.state.get().last).toEqual({
      from: 'server',
      error: `its state of epoch ${full.lastVotedFinal} is not the one the checkpoint names`,
    });
    expect(await node.store.base()).toBeNull();
  });

  it('asks the same peer again when its final state moved on while the chain was checked', async () => {
    const honest = await servingPeer(records);
    let moved = 0;
    // The first time, the peer has finalised a newer epoch by the time the state is asked for: it serves none.
    const peer: Peer = async (method, params, onChunk) => {
      if (method === 'sync.state' && moved++ === 0) {
        const { epoch } = params as { epoch: number };
        return { epoch, chars: 0, held: epoch + 1 };
      }
      return honest(method, params, onChunk);
    };
    const node = await joiningNode(peer);
    expect(await node.join.maybeJoin('server')).toBe(true);
    expect(moved).toBe(2);
    expect((await node.store.base())!.epoch).toBe(full.lastVotedFinal);
  });

  it('refuses a chain whose votes were withheld', async () => {
    const peer = await servingPeer(records, (method, c) => {
      const chunk = c as { link?: { epoch: number; votes: unknown[] } };
      return chunk.link?.epoch === 3 ? ({ link: { ...chunk.link, votes: [] } } as unknown as Json) : c;
    });
    const node = await joiningNode(peer);
    expect(await node.join.maybeJoin('server')).toBe(false);
    expect(node.join.state.get().last).toMatchObject({ error: expect.stringMatching(/^epoch 3: votes hold 0 of/) });
  });

  it('refuses a voterless prefix with a record left out', async () => {
    const peer = await servingPeer(records, (method, c) => {
      const chunk = c as { prefix?: { kind: string }[] };
      return chunk.prefix ? ({ prefix: chunk.prefix.filter((r) => r.kind !== 'stake.add') } as unknown as Json) : c;
    });
    const node = await joiningNode(peer);
    expect(await node.join.maybeJoin('server')).toBe(false);
    expect(node.join.state.get().last).toMatchObject({ error: expect.stringMatching(/records served for epoch 0/) });
  });

  it('stops taking a chain past its budget, however the peer pads it, and keeps no base', async () => {
    const peer = await servingPeer(records, (method, c) =>
      method === 'sync.join' ? ({ ...(c as object), padding: 'x'.repeat(100_000) } as unknown as Json) : c,
    );
    const node = await joiningNode(peer, { init: { maxChainChars: 500_000 } });
    expect(await node.join.maybeJoin('server')).toBe(false);
    expect(node.join.state.get().last).toEqual({
      from: 'server',
      error: 'it served more than 500000 characters of chain',
    });
    expect(await node.store.base()).toBeNull();
  });

  it('a new node that has met one peer waits for a second to confirm the chain, then joins', async () => {
    const node = await joiningNode(await servingPeer(records), { witnessLater: 100 });
    expect(await node.join.maybeJoin('server')).toBe(true);
    expect(node.join.state.get().last).toMatchObject({ from: 'server' });
  });

  it("a new node does not join on one peer's word: a second must serve the same chain", async () => {
    const alone = await joiningNode(await servingPeer(records), { witness: null, init: { witnessWaitMs: 50 } });
    expect(await alone.join.maybeJoin('server')).toBe(false);
    expect(alone.join.state.get().last).toMatchObject({ error: 'no second peer confirms its chain' });
    // A witness that serves another checkpoint of epoch 2: the peers disagree, and neither is trusted.
    const otherRoot = (method: string, c: Json): Json => {
      const chunk = c as { link?: { epoch: number } };
      return chunk.link?.epoch === 2
        ? ({ link: { ...chunk.link, recordsRoot: 'ab'.repeat(32) } } as unknown as Json)
        : c;
    };
    const split = await joiningNode(await servingPeer(records), { witness: await servingPeer(records, otherRoot) });
    expect(await split.join.maybeJoin('server')).toBe(false);
    expect(split.join.state.get().last).toMatchObject({
      error: expect.stringMatching(/^witness serves another checkpoint of epoch 2: peers disagree/),
    });
    expect(await split.store.base()).toBeNull();
  });

  it('refuses a chain nobody voted on, however long (THREATS: a peer with no keys forging finality)', async () => {
    // The attacker serves the checkpoints of an empty replay: every epoch voterless, no votes anywhere.
    const empty = replay(config, [], NOW);
    const forged = async (method: string, params: Json, onChunk?: (c: Json) => void): Promise<Json> => {
      const S = 6;
      if (method === 'sync.join') {
        for (const link of empty.chain.slice(0, S + 1))
          onChunk?.(JSON.parse(JSON.stringify({ link: { ...link, votes: [] } })));
        return { stateEpoch: S, links: S + 1, prefix: 0 };
      }
      onChunk?.(empty.recentStates.get(S)!);
      return { epoch: (params as { epoch: number }).epoch, chars: 0, held: S };
    };
    const node = await joiningNode(forged, { witness: forged });
    expect(await node.join.maybeJoin('server')).toBe(false);
    expect(node.join.state.get().last).toMatchObject({
      error: expect.stringMatching(/^its chain starts with|no votes prove/),
    });
    expect(await node.store.base()).toBeNull();

    // The same from the future (epoch 50, while this node's clock is in epoch 8): refused before anything else.
    const future = replay(config, [], 60 * T);
    const ahead = async (method: string, _params: Json, onChunk?: (c: Json) => void): Promise<Json> => {
      for (const link of future.chain.slice(0, 51))
        onChunk?.(JSON.parse(JSON.stringify({ link: { ...link, votes: [] } })));
      return { stateEpoch: 50, links: 51, prefix: 0 };
    };
    const later = await joiningNode(ahead, { witness: ahead });
    expect(await later.join.maybeJoin('server')).toBe(false);
    expect(later.join.state.get().last).toMatchObject({
      error: `it offers epoch 50, which has not ended by this node's block ${NOW}`,
    });
  });

  it('a node with final history joins only a chain that extends its own, and never one from the future', async () => {
    // It holds epochs 0-3 final; the server serves the honest chain: it may join (far enough ahead).
    const partial = records.filter((r) => r.record.block < 4 * T + 10);
    const honest = await joiningNode(await servingPeer(records), { held: partial, init: { minLead: 1 } });
    expect(honest.snapshot.get()!.lastVotedFinal).toBeGreaterThanOrEqual(1);
    expect(await honest.join.maybeJoin('server')).toBe(true);
    // A chain that differs from its own final history is refused, whatever votes it carries.
    const rewritten = (method: string, c: Json): Json => {
      const chunk = c as { link?: { epoch: number } };
      return chunk.link?.epoch === 0
        ? ({ link: { ...chunk.link, recordsRoot: 'cd'.repeat(32) } } as unknown as Json)
        : c;
    };
    const lied = await joiningNode(await servingPeer(records, rewritten), { held: partial, init: { minLead: 1 } });
    expect(await lied.join.maybeJoin('server')).toBe(false);
    expect(lied.join.state.get().last).toMatchObject({
      error: expect.stringMatching(/^its chain differs from this node's final history at epoch 0/),
    });
    expect((await lied.store.all()).length).toBe(partial.length); // nothing dropped
  });

  it('a node taking part from the start, with records but nothing final yet, keeps its history', async () => {
    const early = records.filter((r) => r.record.block < 2 * T); // epochs 0-1, before any vote
    const node = await joiningNode(await servingPeer(records), { held: early });
    expect(node.snapshot.get()!.lastVotedFinal).toBe(-1);
    expect(await node.join.maybeJoin('server')).toBe(false);
    expect(node.join.state.get().last).toBeNull();
    expect((await node.store.all()).length).toBe(early.length);
  });

  it('an archive never joins, however far behind it is', async () => {
    const node = await joiningNode(await servingPeer(records), { init: { never: true } });
    expect(await node.join.maybeJoin('server')).toBe(false);
    expect(node.join.state.get().last).toBeNull();
    expect(await node.store.base()).toBeNull();
  });

  it('does not join a peer that is not far ahead, and asks each peer once', async () => {
    const peer = await servingPeer(records);
    const uptodate = await joiningNode(peer, { held: records }); // holds all of history: its own replay is as final
    expect(await uptodate.join.maybeJoin('server')).toBe(false);
    expect(uptodate.join.state.get().last).toBeNull();
    expect(await uptodate.store.base()).toBeNull();
    expect(await uptodate.join.maybeJoin('server')).toBe(false);
  });

  it('a peer with no final state yet offers nothing; the node syncs as usual', async () => {
    const early = records.filter((r) => r.record.block < 2 * T);
    const peer = await servingPeer(early);
    const node = await joiningNode(peer);
    expect(await node.join.maybeJoin('server')).toBe(false);
    expect(await node.store.base()).toBeNull();
  });
});
