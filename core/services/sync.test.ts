/**
 * Sync, service against service: two real Syncs over real memory stores reconcile through the fake transport
 * (requests checked as the RPC server checks them, every frame encoded as on the wire, so one over 64 KiB
 * throws). The record book is a stand-in that stores what it is given: these records are synthetic (a 30-day
 * history of 200k rows is far too many to sign in a test); checking records is the record book's job, tested there.
 */
import { describe, expect, it } from 'vitest';
import type { StoredRecordRow } from '../../shared/ledger/db.ts';
import { finalThrough } from '../../shared/ledger/finality.ts';
import { LIMITS } from '../../shared/ledger/reconcile.ts';
import { recordId, type LedgerRecord } from '../../shared/ledger/records.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { actor, smallConfig } from '../../shared/ledger/testing.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import { encodeFrame, MAX_FRAME_BYTES, RpcError } from '../../shared/p2p/messages.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import { MemoryLedgerStore } from '../memory-ledger-store.ts';
import { Store } from '../store.ts';
import { FakeClock, FakePeerTable, FakeRpcRouter, GENESIS_MS, settle, snapshotWith } from '../testing/fakes.ts';
import { FinalRecordSets } from './final-sets.ts';
import type { RecordBook } from './record-book.ts';
import { Sync } from './sync.ts';

const config = smallConfig({ genesisMs: GENESIS_MS });

/** A cheap row with a random-looking id (never fetched: both sides hold it). */
function cheapRow(k: number, block: number): StoredRecordRow {
  const id = (k.toString(16).padStart(8, '0') + 'a5'.repeat(28)).slice(0, 64);
  const hashed = [...id].map((c, i) => ((parseInt(c, 16) * 7 + i * 13 + k) % 16).toString(16)).join('');
  return row({ synthetic: k } as unknown as LedgerRecord, block, hashed);
}

/** A record whose id is its real record id, padded to about `bytes` (the stand-in book stores it unchecked). */
function recordRow(tag: string, k: number, block: number, bytes = 300): StoredRecordRow {
  const record = {
    v: 1,
    network: config.networkId,
    kind: 'transfer',
    author: `synthetic-${tag}`,
    seq: k,
    block,
    body: { pad: 'x'.repeat(Math.max(0, bytes - 250)) },
    sig: 'x',
  } as unknown as LedgerRecord;
  return row(record, block, recordId(record));
}

function row(record: LedgerRecord, block: number, id: string): StoredRecordRow {
  return {
    id,
    network: config.networkId,
    block,
    author: 'a',
    kind: 'transfer',
    record,
    source: 'import',
    receivedAt: 0,
  };
}

interface Traffic {
  frames: number;
  bytes: number;
  largest: number;
  calls: Record<string, number>;
}

/** A node: a real Sync over a memory store, a book that stores what it accepts, and a route to every other node. */
async function node(rows: readonly StoredRecordRow[], lastVotedFinal = -1) {
  const store = new MemoryLedgerStore();
  await store.put(rows);
  const me = await actor();
  const rpc = new FakeRpcRouter(me.key, new FakeClock(GENESIS_MS));
  const listeners = new Set<(records: LedgerRecord[]) => void>();
  const book = {
    network: config,
    onStored: (l: (records: LedgerRecord[]) => void) => (listeners.add(l), () => listeners.delete(l)),
    accept: async (raws: unknown[], source: string) => {
      const fresh: StoredRecordRow[] = [];
      for (const raw of raws) {
        const record = raw as LedgerRecord;
        const id = recordId(record);
        if (!(await store.get([id]))[0]) fresh.push({ ...row(record, record.block, id), source });
      }
      await store.put(fresh);
      if (fresh.length > 0) for (const l of listeners) l(fresh.map((r) => r.record));
      return fresh.length;
    },
  } as unknown as RecordBook;
  const snapshot = new Store<LedgerSnapshot | null>({ ...snapshotWith({}), lastVotedFinal });
  const sync = new Sync(
    { store, book, rpc, peers: new FakePeerTable(), snapshot, finalSets: new FinalRecordSets() },
    { intervalMs: 1e9 }, // this test drives every sync
  );
  await sync.start();
  const methods = rpc.served.get(PROTOCOLS.sync)!.methods;
  /** Serve one request from `peer` as the RPC server would: params checked first, every frame encoded. */
  const serve = async (peer: string, method: string, params: Json, traffic: Traffic, onChunk?: (c: Json) => void) => {
    const m = methods[method];
    if (!m) throw new RpcError('unknown-method', method);
    const refused = m.check?.(params);
    if (refused) throw new RpcError('bad-params', refused);
    const id = 'x'.repeat(64); // the longest request id, for the largest envelope
    const frame = (message: unknown) => {
      const bytes = encodeFrame(message).byteLength; // throws too-large past 64 KiB
      traffic.frames++;
      traffic.bytes += bytes;
      traffic.largest = Math.max(traffic.largest, bytes);
      return JSON.parse(JSON.stringify(message)) as { data?: Json; result?: Json };
    };
    let seq = 0;
    const result = await m.run(params, {
      peer,
      requestId: id,
      signal: new AbortController().signal,
      emit: async (data) => onChunk?.(frame({ t: 'chunk', id, seq: seq++, data }).data!),
    });
    return frame({ t: 'res', id, ok: true, result }).result!;
  };
  return { store, rpc, sync, serve };
}

type Node = Awaited<ReturnType<typeof node>>;

/** Route every call between `nodes` by name, counting request and reply frames into `traffic`. */
function connect(nodes: Record<string, Node>, traffic: Traffic) {
  for (const [name, n] of Object.entries(nodes))
    n.rpc.answer = async (to, request, opts) => {
      const request_ = encodeFrame(request).byteLength;
      traffic.frames++;
      traffic.bytes += request_;
      traffic.largest = Math.max(traffic.largest, request_);
      traffic.calls[request.method] = (traffic.calls[request.method] ?? 0) + 1;
      return nodes[to]!.serve(name, request.method, request.params, traffic, opts.onChunk);
    };
}

const traffic = (): Traffic => ({ frames: 0, bytes: 0, largest: 0, calls: {} });
const idsOf = async (n: Node) => new Set((await n.store.all()).map((r) => r.id));

/** Wait until the background fetches (a peer fetching what our request showed it lacks) are done. */
async function until(done: () => Promise<boolean>) {
  for (let k = 0; k < 200 && !(await done()); k++) await settle();
}

describe('sync', () => {
  it('reconciles a 30-day-sized store (200k rows) with a peer holding 1000 others, every frame under 64 KiB', async () => {
    const days30 = 200_000;
    const common = Array.from({ length: days30 }, (_, k) => cheapRow(k, Math.floor(k / 4)));
    // Records spread over the month, some near the largest a record may be.
    const onlyA = Array.from({ length: 500 }, (_, k) => recordRow('a', k, k * 97, k % 50 === 0 ? 45_000 : 300));
    const onlyB = Array.from({ length: 500 }, (_, k) => recordRow('b', k, k * 89 + 3, k % 50 === 0 ? 45_000 : 300));
    const a = await node([...common, ...onlyA]);
    const b = await node([...common, ...onlyB]);
    const t = traffic();
    connect({ a, b }, t);

    const started = performance.now();
    expect(await a.sync.syncWith('b')).toBe(500);
    await until(async () => (await b.store.count()) === days30 + 1000);
    const ms = performance.now() - started;

    const union = new Set([...common, ...onlyA, ...onlyB].map((r) => r.id));
    expect(await idsOf(a)).toEqual(union);
    expect(await idsOf(b)).toEqual(union);
    expect(t.largest).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    console.log(
      `200k+500 vs 200k+500: ${t.frames} frames, ${t.bytes} bytes, largest ${t.largest}, calls ` +
        `${JSON.stringify(t.calls)}, ${ms.toFixed(0)} ms (index builds included)`,
    );

    // Once they agree, a sync is one small round trip.
    const again = traffic();
    connect({ a, b }, again);
    expect(await a.sync.syncWith('b')).toBe(0);
    expect(again.calls).toEqual({ 'sync.reconcile': 1 });
    expect(again.bytes).toBeLessThan(1500);
  });

  it('does not sync records of final epochs', async () => {
    const final = 2; // epochs 0..2 are final: blocks before finalThrough
    const F = finalThrough(config, final);
    const early = Array.from({ length: 30 }, (_, k) => recordRow('early', k, k % F));
    const late = Array.from({ length: 30 }, (_, k) => recordRow('late', k, F + k));
    const a = await node([], final);
    const b = await node([...early, ...late]);
    connect({ a, b }, traffic());
    expect(await a.sync.syncWith('b')).toBe(30);
    expect(await idsOf(a)).toEqual(new Set(late.map((r) => r.id)));
  });

  it('sends records in chunks filled up to a frame, large ones too', async () => {
    const big = Array.from({ length: 40 }, (_, k) => recordRow('big', k, 10 + k, 45_000));
    const small = Array.from({ length: 160 }, (_, k) => recordRow('small', k, 100 + k, 300));
    const b = await node([...big, ...small]);
    const chunks: number[] = [];
    const t = traffic();
    const served = await b.serve('a', 'sync.records', { ids: [...big, ...small].map((r) => r.id) }, t, (c) =>
      chunks.push((c as unknown[]).length),
    );
    expect(served).toBe(200);
    expect(chunks.reduce((s, n) => s + n, 0)).toBe(200);
    expect(t.largest).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    expect(chunks.length).toBeLessThan(50); // small records share chunks
  });

  it('refuses malformed, oversized and too-many-range requests, and changes nothing', async () => {
    const rows = Array.from({ length: 2000 }, (_, k) => cheapRow(k, k));
    const b = await node(rows);
    const t = traffic();
    const range = { lo: [0, ''], hi: null, fp: '0'.repeat(32), n: 5 };
    const ids = (n: number) => Array.from({ length: n }, (_, k) => k.toString(16).padStart(64, '0'));
    const bad: [string, Json][] = [
      ['sync.reconcile', null],
      ['sync.reconcile', { ranges: [] }],
      ['sync.reconcile', { ranges: Array(LIMITS.maxRanges + 1).fill(range) }],
      ['sync.reconcile', { ranges: [{ ...range, lo: [-1, ''] }] }],
      ['sync.reconcile', { ranges: [{ ...range, lo: [0, 'XYZ'] }] }],
      ['sync.reconcile', { ranges: [{ ...range, fp: 'nothex' }] }],
      ['sync.reconcile', { ranges: [{ ...range, extra: 1 }] }],
      ['sync.reconcile', { ranges: [{ lo: [0, ''], hi: null, ids: ids(LIMITS.leaf + 1) }] }],
      [
        'sync.reconcile',
        { ranges: Array(LIMITS.maxIds / LIMITS.leaf + 1).fill({ lo: [0, ''], hi: null, ids: ids(16) }) },
      ],
      ['sync.records', { ids: ids(201) }],
      ['sync.records', { ids: ['../etc'] }],
    ];
    for (const [method, params] of bad)
      await expect(
        b.serve('mallory', method, params, t),
        `${method} ${JSON.stringify(params).slice(0, 80)}`,
      ).rejects.toMatchObject({
        code: 'bad-params',
      });
    // Over 64 KiB the frame itself is refused before any handler sees it.
    expect(() =>
      encodeFrame({ method: 'sync.reconcile', params: { ranges: [{ ...range, fp: 'a'.repeat(70_000) }] } }),
    ).toThrow(expect.objectContaining({ code: 'too-large' }));
    // The largest valid request still gets an answer within a frame, from a bounded amount of work.
    const worst = {
      ranges: Array.from({ length: LIMITS.maxRanges }, (_, k) => ({ lo: [k, ''], hi: null, fp: '0'.repeat(32), n: 0 })),
    };
    await b.serve('mallory', 'sync.reconcile', worst, t);
    expect(t.largest).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    expect(await b.store.count()).toBe(2000);
    expect(t.frames).toBe(1);
  });

  it('stops at an answer it did not ask for, counts it against the peer and keeps its store', async () => {
    const a = await node(Array.from({ length: 100 }, (_, k) => cheapRow(k, k)));
    a.rpc.answer = async () => ({ ranges: [{ lo: [0, ''], hi: [1_000_000, ''], have: ['f'.repeat(64)] }], handled: 5 });
    expect(await a.sync.syncWith('mallory')).toBe(0);
    expect(a.rpc.refusals.get()).toEqual({ mallory: 1 });
    a.rpc.answer = async () => ({ ranges: 'lots' });
    expect(await a.sync.syncWith('mallory')).toBe(0);
    expect(a.rpc.refusals.get()).toEqual({ mallory: 2 });
    expect(await a.store.count()).toBe(100);
  });
});
