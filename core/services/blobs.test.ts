/**
 * Blobs, service against service: one node serves blobs through a real Blobs, another fetches them through its own.
 * Only the transport is a fake (a request goes from one router straight to the other's handler, every chunk as a
 * 64 KiB-checked JSON frame), so a test can cut a transfer off, or play a server that lies; one test runs the real
 * RPC server over in-memory libp2p streams. Attack-minded: whatever a peer sends, the fetching node holds at most one
 * window in memory and at most the size it accepted on disk, and keeps nothing that does not hash to the name.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { streamPair } from '@libp2p/utils';
import { describe, expect, it } from 'vitest';
import { NodeError } from '../../shared/errors.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import { encodeFrame, MAX_FRAME_BYTES, RpcError } from '../../shared/p2p/messages.ts';
import { exchange, RpcServer, type Json } from '../../shared/p2p/rpc.ts';
import { MemoryBlobStore } from '../chunked-blob-store.ts';
import { FileBlobStore } from '../nodejs/file-blob-store.ts';
import type { BlobStore } from '../platform.ts';
import { FakeRpcRouter, deferred } from '../testing/fakes.ts';
import type { CallOptions } from './rpc.ts';
import { BLOB_CHUNK_BYTES, Blobs, MAX_REPLY_BYTES, fromBase64, toBase64, type BlobsInit } from './blobs.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const clock = { now: () => Date.now() };

/** `n` bytes that differ from offset to offset (and from seed to seed). */
function bytesOf(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let k = 0; k < n; k++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    out[k] = x & 0xff;
  }
  return out;
}

/** How a link between two nodes behaves; a test changes it between fetches. */
interface Link {
  /** Rewrite each chunk the server emits into the chunks the client receives (a lying server). */
  chunks?: (chunk: Json, index: number) => Json[];
  /** Rewrite the request's params before the server sees them. */
  params?: (params: Json) => Json;
  /** Rewrite the server's final answer. */
  final?: (result: Json) => Json;
  /** The connection drops after this many chunks have reached the client. */
  cutAfter?: number;
  /** Awaited before each chunk is delivered (a slow link). */
  gate?: () => Promise<void>;
}

interface TestNode {
  id: string;
  rpc: FakeRpcRouter;
  store: BlobStore;
  blobs: Blobs;
}

interface Traffic {
  calls: number;
  /** Chunks delivered to the client, and the largest frame (bytes) they took. */
  delivered: number;
  largestFrame: number;
  /** Data bytes the client received, all calls together. */
  dataBytes: number;
}

async function testNode(init: BlobsInit = {}, store: BlobStore = new MemoryBlobStore()): Promise<TestNode> {
  const key = await generateKeyPair('Ed25519');
  const rpc = new FakeRpcRouter(key, clock);
  const blobs = new Blobs({ rpc, store }, init);
  await blobs.start();
  return { id: peerIdFromPrivateKey(key).toString(), rpc, store, blobs };
}

/**
 * Route `client`'s blob requests to `server`'s handler as the wire would: the request's params, every chunk and
 * the result through JSON, each chunk in a frame of at most 64 KiB, errors as RpcErrors counted against the caller
 * unless the service says not to, and the caller's abort ending the exchange at once.
 */
function connect(client: TestNode, server: TestNode, link: Link = {}): Traffic {
  const traffic: Traffic = { calls: 0, delivered: 0, largestFrame: 0, dataBytes: 0 };
  client.rpc.answer = async (to, request, options: CallOptions) => {
    if (to !== server.id) throw new RpcError('internal', `no route to ${to}`);
    traffic.calls++;
    const served = server.rpc.served.get(options.protocol);
    const method = served?.methods[request.method];
    const refuse = (e: RpcError) => {
      if (served?.options.onRefused?.(client.id, e.code) !== false) server.rpc.countRefusal(client.id);
      return e;
    };
    if (!method) throw refuse(new RpcError('unknown-method', `no method "${request.method}"`));
    const params = JSON.parse(JSON.stringify(link.params ? link.params(request.params) : request.params)) as Json;
    const problem = method.check?.(params);
    if (problem) throw refuse(new RpcError('bad-params', problem));
    const callerGone = new AbortController();
    const signal = options.signal ?? new AbortController().signal;
    let emitted = 0;
    const work = method.run(params, {
      peer: client.id,
      requestId: request.id,
      signal: callerGone.signal,
      emit: async (chunk) => {
        for (const out of link.chunks ? link.chunks(chunk, emitted) : [chunk]) {
          await link.gate?.();
          if (signal.aborted || callerGone.signal.aborted)
            throw new RpcError('cancelled', 'the caller reset the stream');
          if (link.cutAfter !== undefined && traffic.delivered >= link.cutAfter) {
            callerGone.abort();
            throw new RpcError('cancelled', 'the connection dropped');
          }
          const frame = encodeFrame({ t: 'chunk', id: request.id, seq: traffic.delivered, data: out });
          traffic.largestFrame = Math.max(traffic.largestFrame, frame.length);
          traffic.delivered++;
          const data = (out as { data?: unknown }).data;
          if (typeof data === 'string') traffic.dataBytes += fromBase64(data)?.length ?? 0;
          options.onChunk?.((JSON.parse(new TextDecoder().decode(frame)) as { data: Json }).data);
        }
        emitted++;
      },
    });
    const aborted = new Promise<never>((_, reject) => {
      const stop = () => {
        callerGone.abort();
        reject(new RpcError('cancelled', 'you cancelled the request'));
      };
      if (signal.aborted) stop();
      else signal.addEventListener('abort', stop, { once: true });
    });
    try {
      const result = await Promise.race([work, aborted]);
      return JSON.parse(JSON.stringify(link.final ? link.final(result) : result)) as Json;
    } catch (err) {
      if (link.cutAfter !== undefined && callerGone.signal.aborted && !signal.aborted)
        throw new RpcError('timeout', 'the connection dropped');
      throw err instanceof RpcError ? refuse(err) : err;
    } finally {
      work.catch(() => {});
      aborted.catch(() => {});
    }
  };
  return traffic;
}

/** A server holding and serving `bytes`, and a client linked to it. */
async function pair(
  bytes: Uint8Array,
  options: { client?: BlobsInit; server?: BlobsInit; clientStore?: BlobStore } = {},
) {
  const server = await testNode(options.server);
  const client = await testNode(options.client, options.clientStore);
  const hash = await server.blobs.add(bytes);
  await server.blobs.serve(hash);
  return { server, client, hash };
}

/** Nothing of `hash` is held: no blob, no partial download. */
async function holdsNothing(node: TestNode, hash: string) {
  expect(await node.store.has(hash)).toBe(false);
  expect(await node.store.partialSize(hash)).toBe(0);
  expect(await node.store.listPartials()).toEqual([]);
}

const refusalsOf = (node: TestNode, peer: string) => node.rpc.refusals.get()[peer] ?? 0;
const expectSame = (a: Uint8Array, b: Uint8Array) => expect([a.length, sha(a)]).toEqual([b.length, sha(b)]);

describe('fetching a blob', () => {
  it('round-trips a blob in 4 MiB windows of frames under 64 KiB, and a second fetch costs nothing', async () => {
    const bytes = bytesOf(9 * MiB + 12_345);
    const { server, client, hash } = await pair(bytes);
    const traffic = connect(client, server);
    const progress: number[] = [];
    const result = await client.blobs.fetch(server.id, hash, { onProgress: (held) => progress.push(held) });
    expect(result).toEqual({ hash, size: bytes.length, received: bytes.length, resumedFrom: 0 });
    expectSame(await client.store.read(hash, 0, bytes.length), bytes);
    expect(await client.store.listPartials()).toEqual([]);
    expect(traffic.calls).toBe(3); // 4 MiB + 4 MiB + the rest
    expect(traffic.largestFrame).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    expect(traffic.largestFrame).toBeGreaterThan(60 * KiB); // full chunks: 45 KiB as base64
    expect(progress.at(-1)).toBe(bytes.length);
    expect(server.blobs.state.get().sentBytes).toBe(bytes.length);
    expect(client.blobs.state.get().receivedBytes).toBe(bytes.length);

    expect(await client.blobs.fetch(server.id, hash)).toEqual({
      hash,
      size: bytes.length,
      received: 0,
      resumedFrom: bytes.length,
    });
    expect(traffic.calls).toBe(3);
  });

  it('round-trips the empty blob and a blob of one byte', async () => {
    for (const bytes of [new Uint8Array(0), new Uint8Array([7])]) {
      const { server, client, hash } = await pair(bytes);
      connect(client, server);
      expect(await client.blobs.fetch(server.id, hash)).toMatchObject({ size: bytes.length });
      expect(await client.store.size(hash)).toBe(bytes.length);
    }
  });

  it('continues an interrupted fetch from the bytes already held, and the server sends only the rest', async () => {
    const bytes = bytesOf(2 * MiB, 2);
    const { server, client, hash } = await pair(bytes);
    connect(client, server, { cutAfter: 12 }); // the header and 11 chunks, then the connection drops
    const cut = await client.blobs.fetch(server.id, hash).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(RpcError);
    expect((cut as RpcError).code).toBe('timeout');
    const held = await client.store.partialSize(hash);
    expect(held).toBe(11 * BLOB_CHUNK_BYTES); // every byte that arrived was kept
    expect(await client.store.has(hash)).toBe(false);
    expect(refusalsOf(client, server.id)).toBe(0); // a dropped connection is nobody's lie

    const sentBefore = server.blobs.state.get().sentBytes;
    const traffic = connect(client, server);
    const result = await client.blobs.fetch(server.id, hash);
    expect(result).toEqual({ hash, size: bytes.length, received: bytes.length - held, resumedFrom: held });
    expect(traffic.dataBytes).toBe(bytes.length - held);
    expect(server.blobs.state.get().sentBytes - sentBefore).toBe(bytes.length - held);
    expectSame(await client.store.read(hash, 0, bytes.length), bytes);
    expect(await client.store.listPartials()).toEqual([]);
  });

  it('resumes across a restart of the fetching node (files on disk)', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'blobs-fetch-')), 'blobs');
    const bytes = bytesOf(MiB, 3);
    const { server, client, hash } = await pair(bytes, { clientStore: new FileBlobStore(dir) });
    connect(client, server, { cutAfter: 7 });
    await expect(client.blobs.fetch(server.id, hash)).rejects.toThrow(/dropped/);
    const held = await client.store.partialSize(hash);
    expect(held).toBe(6 * BLOB_CHUNK_BYTES);

    const restarted = await testNode({}, new FileBlobStore(dir));
    const traffic = connect(restarted, server);
    expect(await restarted.blobs.fetch(server.id, hash)).toMatchObject({ resumedFrom: held, received: MiB - held });
    expect(traffic.dataBytes).toBe(MiB - held);
    expectSame(await restarted.store.read(hash, 0, MiB), bytes);
  });

  it('a cancelled fetch keeps what arrived, for later', async () => {
    const bytes = bytesOf(MiB, 4);
    const { server, client, hash } = await pair(bytes);
    const cancel = new AbortController();
    let chunks = 0;
    connect(client, server, {
      gate: async () => {
        if (++chunks === 5) cancel.abort();
      },
    });
    await expect(client.blobs.fetch(server.id, hash, { signal: cancel.signal })).rejects.toMatchObject({
      code: 'cancelled',
    });
    expect(await client.store.partialSize(hash)).toBe(3 * BLOB_CHUNK_BYTES);
    connect(client, server);
    expect(await client.blobs.fetch(server.id, hash)).toMatchObject({ resumedFrom: 3 * BLOB_CHUNK_BYTES });
  });

  it('refuses a bad name before asking anyone', async () => {
    const client = await testNode();
    for (const bad of ['A'.repeat(64), 'abc', '../etc/passwd'])
      await expect(client.blobs.fetch('nobody', bad)).rejects.toThrow(/64 lowercase hex/);
    await expect(client.blobs.fetch('nobody', 'a'.repeat(64), { maxBytes: -1 })).rejects.toThrow(/maxBytes/);
  });

  it('runs over the real RPC server and libp2p streams (16 MiB)', async () => {
    const bytes = bytesOf(16 * MiB, 5);
    const { server, client, hash } = await pair(bytes);
    const methods = server.rpc.served.get(PROTOCOLS.blobs)!;
    const rpcServer = new RpcServer({ methods: methods.methods, now: clock.now });
    let streams = 0;
    client.rpc.exchangeFrames = async (_peer, frames, id, options) => {
      const [near, far] = await streamPair();
      streams++;
      const handled = rpcServer.handle(far, client.id);
      try {
        return await exchange(near, frames, id, AbortSignal.timeout(options.timeoutMs ?? 10_000), options.onChunk);
      } finally {
        await handled;
      }
    };
    const started = performance.now();
    expect(await client.blobs.fetch(server.id, hash)).toMatchObject({ size: 16 * MiB, received: 16 * MiB });
    const seconds = (performance.now() - started) / 1000;
    expect(streams).toBe(4);
    expectSame(await client.store.read(hash, 0, 16 * MiB), bytes);
    expect(seconds).toBeLessThan(30);
  });
});

describe('a lying server', () => {
  /** A server that serves `bytes` with the link given, a fresh client; the fetch's error. */
  async function lie(link: Link, bytes = bytesOf(300 * KiB, 6)) {
    const { server, client, hash } = await pair(bytes);
    const traffic = connect(client, server, link);
    const error = (await client.blobs.fetch(server.id, hash).catch((e: unknown) => e)) as RpcError;
    expect(error).toBeInstanceOf(RpcError);
    await holdsNothing(client, hash);
    return { error, server, client, hash, traffic };
  }

  it('sending bytes that do not hash to the name: refused, nothing kept, counted against it', async () => {
    const { error, client, server, hash } = await lie({
      chunks: (c, k) => {
        if (k !== 3) return [c];
        const bytes = fromBase64((c as { data: string }).data)!;
        bytes[100] = bytes[100]! ^ 1;
        return [{ ...(c as object), data: toBase64(bytes) }];
      },
    });
    expect(error.code).toBe('bad-frame');
    expect(error.message).toContain(`the ${300 * KiB} bytes of blob ${hash}`);
    expect(error.message).toContain('nothing of them was kept');
    expect(refusalsOf(client, server.id)).toBe(1);
  });

  it('sending more than it announced: stopped at the first byte too many', async () => {
    const extra = toBase64(bytesOf(1000, 9));
    let tail = 0;
    const { error, traffic, client, server } = await lie({
      // After the last chunk, a flood of more.
      chunks: (c, k) =>
        k === 7 ? [c, ...Array.from({ length: 500 }, () => ({ at: 300 * KiB + tail++, data: extra }))] : [c],
    });
    expect(error.message).toMatch(/sent more than the 307200 bytes it announced/);
    expect(traffic.delivered).toBe(9); // header, 7 chunks, and the first one too many: then the stream was reset
    expect(client.blobs.state.get().receivedBytes).toBe(300 * KiB);
    expect(refusalsOf(client, server.id)).toBe(1);
  });

  it('answering with a different blob: refused by its hash', async () => {
    const other = bytesOf(300 * KiB, 7);
    const { server, client, hash } = await pair(bytesOf(300 * KiB, 6));
    const otherHash = await server.blobs.add(other);
    await server.blobs.serve(otherHash);
    // It serves the other blob's bytes, and says they are the blob asked for.
    connect(client, server, {
      params: (p) => ({ ...(p as object), hash: otherHash }),
      final: (r) => ({ ...(r as object), hash }),
    });
    await expect(client.blobs.fetch(server.id, hash)).rejects.toThrow(`hash to ${otherHash}`);
    await holdsNothing(client, hash);
    // Saying so in its answer: refused at the end of the window, before hashing.
    connect(client, server, { params: (p) => ({ ...(p as object), hash: otherHash }) });
    await expect(client.blobs.fetch(server.id, hash)).rejects.toThrow(/ended its answer with/);
    await holdsNothing(client, hash);
    expect(refusalsOf(client, server.id)).toBe(2);
  });

  it('bytes at the wrong offset, data before the size, bad base64, a changed size, a wrong count: each refused', async () => {
    const cases: [Link, RegExp][] = [
      [{ chunks: (c, k) => (k === 2 ? [{ ...(c as object), at: 0 }] : [c]) }, /sent bytes at offset 0 where 46080/],
      [{ chunks: (c, k) => (k === 0 ? [] : [c]) }, /before announcing the size/],
      [{ chunks: (c, k) => (k === 1 ? [{ at: 0, data: 'not base64!' }] : [c]) }, /not base64/],
      [{ chunks: (c, k) => (k === 1 ? [{ at: 0, data: '' }] : [c]) }, /empty chunk/],
      [{ chunks: (c, k) => (k === 1 ? [{ at: 0, stuff: 1 }] : [c]) }, /malformed chunk/],
      [{ chunks: (c, k) => (k === 0 ? [{ size: 300 * KiB + 1 }] : [c]) }, /ended its answer with/],
      [{ chunks: (c, k) => (k === 5 ? [] : [c]) }, /where 184320 was next/],
      [{ chunks: (c, k) => (k === 7 ? [] : [c]) }, /ended its answer with .* after sending 276480 bytes/],
      [{ final: () => 'done' }, /ended its answer malformed/],
      // Less than asked (it would have the fetch ask again and again): refused.
      [
        { params: (p) => ({ ...(p as object), length: 1000 }) },
        /sent 1000 bytes from offset 0 where 307200 were asked/,
      ],
    ];
    for (const [link, message] of cases) {
      const { error } = await lie(link);
      expect(error.code).toBe('bad-frame');
      expect(error.message).toMatch(message);
    }
  });

  it('announcing fewer bytes than the fetching node holds, or another size in a later window: refused', async () => {
    const bytes = bytesOf(MiB, 8);
    const { server, client, hash } = await pair(bytes, { client: { windowBytes: 256 * KiB } });
    connect(client, server, { cutAfter: 8 });
    await expect(client.blobs.fetch(server.id, hash)).rejects.toThrow(/dropped/);
    // The first window (the header and six chunks) and the second's header arrived.
    expect(await client.store.partialSize(hash)).toBe(256 * KiB);
    connect(client, server, { chunks: (c, k) => (k === 0 ? [{ size: 1000 }] : [c]) });
    await expect(client.blobs.fetch(server.id, hash)).rejects.toThrow(/announced 1000 bytes .* fewer than the 262144/);
    await holdsNothing(client, hash);

    let windows = 0;
    connect(client, server, {
      chunks: (c) => ('size' in (c as object) && windows++ === 1 ? [{ size: MiB + 1 }] : [c]),
    });
    await expect(client.blobs.fetch(server.id, hash)).rejects.toThrow(
      /announced 1048577 bytes .* after announcing 1048576/,
    );
    await holdsNothing(client, hash);
  });
});

describe('limits', () => {
  it('refuses a blob over maxBytes before taking a byte, and deletes what was held of it', async () => {
    const bytes = bytesOf(MiB, 10);
    const { server, client, hash } = await pair(bytes);
    connect(client, server, { cutAfter: 4 });
    await expect(client.blobs.fetch(server.id, hash)).rejects.toThrow(/dropped/);
    expect(await client.store.partialSize(hash)).toBeGreaterThan(0);
    const before = client.blobs.state.get().receivedBytes;
    const traffic = connect(client, server);
    const error = (await client.blobs
      .fetch(server.id, hash, { maxBytes: MiB - 1 })
      .catch((e: unknown) => e)) as RpcError;
    expect(error.code).toBe('too-large');
    expect(error.message).toBe(
      `${server.id} announced ${MiB} bytes for blob ${hash}; this fetch takes at most ${MiB - 1}`,
    );
    expect(traffic.dataBytes).toBe(0);
    expect(client.blobs.state.get().receivedBytes).toBe(before);
    await holdsNothing(client, hash);
    expect(refusalsOf(client, server.id)).toBe(0); // a large blob is no lie
  });

  it('holds to the per-blob limit, fetching and adding', async () => {
    const bytes = bytesOf(100 * KiB, 11);
    const { server, client, hash } = await pair(bytes, { client: { maxBlobBytes: 100 * KiB - 1 } });
    connect(client, server);
    await expect(client.blobs.fetch(server.id, hash, { maxBytes: MiB })).rejects.toMatchObject({ code: 'too-large' });
    await expect(client.blobs.add(bytes)).rejects.toThrow(
      `a blob is at most ${100 * KiB - 1} bytes; this one is ${100 * KiB}`,
    );
    await holdsNothing(client, hash);
  });

  it('refuses a fetch over the quota before writing, saying what uses it', async () => {
    const bytes = bytesOf(600 * KiB, 12);
    const { server, client, hash } = await pair(bytes, { clientStore: new MemoryBlobStore(MiB) });
    await client.blobs.add(bytesOf(500 * KiB, 13));
    const traffic = connect(client, server);
    const error = (await client.blobs.fetch(server.id, hash).catch((e: unknown) => e)) as NodeError;
    expect(error).toBeInstanceOf(NodeError);
    expect(error.code).toBe('storage');
    expect(error.message).toBe(
      `blob quota: blob ${hash} needs ${600 * KiB} more bytes, but blobs use ${500 * KiB} of the ${MiB} allowed ` +
        `(${500 * KiB} stored, 0 in partial downloads, 0 reserved by downloads in progress); delete blobs or raise the quota`,
    );
    expect(traffic.calls).toBe(1);
    await holdsNothing(client, hash);
    expect(await client.blobs.usage()).toEqual({ stored: 500 * KiB, partial: 0, quota: MiB });
    await expect(client.blobs.add(bytesOf(600 * KiB, 14))).rejects.toThrow(/blob quota/);
  });

  it('counts downloads in progress against the quota: of two at once, one is refused', async () => {
    const a = bytesOf(600 * KiB, 15);
    const b = bytesOf(600 * KiB, 16);
    const server = await testNode();
    const client = await testNode({}, new MemoryBlobStore(MiB));
    const [ha, hb] = [await server.blobs.add(a), await server.blobs.add(b)];
    await server.blobs.serve(ha);
    await server.blobs.serve(hb);
    connect(client, server, { gate: () => new Promise((r) => setTimeout(r, 1)) });
    const outcomes = await Promise.allSettled([client.blobs.fetch(server.id, ha), client.blobs.fetch(server.id, hb)]);
    expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    expect((refused.reason as Error).message).toMatch(/reserved by downloads in progress/);
    expect((await client.blobs.usage()).stored).toBe(600 * KiB);
  });

  it('drops partial downloads nobody is fetching to make room', async () => {
    const bytes = bytesOf(600 * KiB, 17);
    const stale = bytesOf(700 * KiB, 18);
    const { server, client, hash } = await pair(bytes, { clientStore: new MemoryBlobStore(MiB) });
    await client.store.appendPartial(sha(stale), stale.subarray(0, 500 * KiB));
    connect(client, server);
    expect(await client.blobs.fetch(server.id, hash)).toMatchObject({ size: 600 * KiB });
    expect(await client.store.partialSize(sha(stale))).toBe(0);
  });

  it('never holds more than one window of a transfer in memory: appends go to the store as it arrives', async () => {
    const bytes = bytesOf(3 * MiB, 19);
    const appended: number[] = [];
    const store = new MemoryBlobStore();
    const append = store.appendPartial.bind(store);
    store.appendPartial = async (h, b) => {
      appended.push(b.length);
      return append(h, b);
    };
    const { server, client, hash } = await pair(bytes, { clientStore: store, client: { windowBytes: MiB } });
    connect(client, server);
    await client.blobs.fetch(server.id, hash);
    expect(appended.reduce((a, b) => a + b, 0)).toBe(3 * MiB);
    expect(Math.max(...appended)).toBeLessThanOrEqual(300 * KiB); // 256 KiB gathered, then written
  });
});

describe('serving', () => {
  /** Call `blob.get` on `server` as `peer` would; the chunks and the result, or the RpcError. */
  async function get(server: TestNode, params: Json, peer = 'p') {
    const { methods } = server.rpc.served.get(PROTOCOLS.blobs)!;
    const chunks: Json[] = [];
    const problem = methods['blob.get']!.check!(params);
    if (problem) return { error: new RpcError('bad-params', problem), chunks };
    try {
      const result = await methods['blob.get']!.run(params, {
        peer,
        requestId: 'r',
        signal: new AbortController().signal,
        emit: async (c) => void chunks.push(c),
      });
      return { result, chunks };
    } catch (err) {
      return { error: err as RpcError, chunks };
    }
  }

  it('serves only what it chose to serve, never what it merely holds', async () => {
    const server = await testNode();
    const hash = await server.blobs.add(bytesOf(1000, 20));
    const notServed = (await get(server, { hash, offset: 0 })).error!;
    expect(notServed.code).toBe('bad-params');
    expect(notServed.message).toBe(`this node serves no blob ${hash}`);
    await server.blobs.serve(hash);
    expect(server.blobs.state.get().served).toEqual([hash]);
    expect((await get(server, { hash, offset: 0 })).result).toEqual({ hash, size: 1000, offset: 0, sent: 1000 });
    server.blobs.unserve(hash);
    expect((await get(server, { hash, offset: 0 })).error!.message).toMatch(/serves no blob/);
    await expect(server.blobs.serve('b'.repeat(64))).rejects.toThrow(/no such blob is stored here/);
    await server.blobs.serve(hash);
    await server.blobs.delete(hash);
    expect(server.blobs.isServed(hash)).toBe(false);
    expect(await server.store.has(hash)).toBe(false);

    // Fetching a blob the peer does not serve: its refusal, as it said it.
    const client = await testNode();
    connect(client, server);
    await expect(client.blobs.fetch(server.id, hash)).rejects.toThrow(`this node serves no blob ${hash}`);
    await holdsNothing(client, hash);
  });

  it('says what is wrong with a request: the hash, the offset, the length', async () => {
    const server = await testNode();
    const hash = await server.blobs.add(bytesOf(1000, 21));
    await server.blobs.serve(hash);
    const cases: [Json, RegExp][] = [
      [{ hash: 'ABC', offset: 0 }, /hash: expected the sha256 of the blob, 64 lowercase hex characters/],
      [{ hash, offset: -1 }, /offset: /],
      [{ hash, offset: 0, length: 0 }, /length: /],
      [{ hash, offset: 0, length: MAX_REPLY_BYTES + 1 }, /length: /],
      [{ hash, offset: 0, path: '/etc/passwd' }, /params must be \{hash, offset, length\?/],
      [null, /params must be/],
      [{ hash, offset: 1001 }, new RegExp(`offset 1001 is past the end of blob ${hash} \\(1000 bytes\\)`)],
    ];
    for (const [params, message] of cases) {
      const { error } = await get(server, params);
      expect(error?.code).toBe('bad-params');
      expect(error?.message).toMatch(message);
    }
    // From an offset, up to a length: the header, then exactly those bytes.
    const { result, chunks } = await get(server, { hash, offset: 990, length: 5 });
    expect(result).toEqual({ hash, size: 1000, offset: 990, sent: 5 });
    expect(chunks).toEqual([{ size: 1000 }, { at: 990, data: toBase64(bytesOf(1000, 21).subarray(990, 995)) }]);
    expect((await get(server, { hash, offset: 1000 })).result).toEqual({ hash, size: 1000, offset: 1000, sent: 0 });
  });

  it('answers at most 4 MiB per request', async () => {
    const server = await testNode();
    const hash = await server.blobs.add(bytesOf(5 * MiB, 22));
    await server.blobs.serve(hash);
    expect((await get(server, { hash, offset: 0 })).result).toMatchObject({ sent: MAX_REPLY_BYTES });
  });

  it('refuses a peer over its rate, and only that peer; a refused fetch keeps what it had', async () => {
    const server = await testNode({ rate: { requests: 3, perSeconds: 60 } });
    const hash = await server.blobs.add(bytesOf(100, 23));
    await server.blobs.serve(hash);
    for (let k = 0; k < 3; k++) expect((await get(server, { hash, offset: 0 }, 'greedy')).result).toBeTruthy();
    const error = (await get(server, { hash, offset: 0 }, 'greedy')).error!;
    expect(error.code).toBe('rate-limited');
    expect(error.message).toBe('at most 3 blob requests per 60 s per peer; slow down');
    expect((await get(server, { hash, offset: 0 }, 'other')).result).toBeTruthy();
    // Probing blobs it does not serve costs the same.
    expect((await get(server, { hash: 'c'.repeat(64), offset: 0 }, 'other')).error!.code).toBe('bad-params');

    // A fetch that needs more windows than the rate allows: stops, keeps its bytes, continues later.
    const big = bytesOf(600 * KiB, 24);
    const bigHash = await server.blobs.add(big);
    await server.blobs.serve(bigHash);
    const client = await testNode({ windowBytes: 100 * KiB });
    connect(client, server);
    await expect(client.blobs.fetch(server.id, bigHash)).rejects.toMatchObject({ code: 'rate-limited' });
    expect(await client.store.partialSize(bigHash)).toBe(300 * KiB);
    expect(server.rpc.refusals.get()[client.id]).toBe(1);
  });

  it('sends a bounded number of blobs at once; beyond, busy (not held against the asker)', async () => {
    const server = await testNode({ maxStreams: 1 });
    const hash = await server.blobs.add(bytesOf(200 * KiB, 25));
    await server.blobs.serve(hash);
    const first = await testNode();
    const second = await testNode();
    const open = deferred();
    let started!: () => void;
    const streaming = new Promise<void>((r) => (started = r));
    connect(first, server, { gate: () => (started(), open.promise) });
    connect(second, server);
    const slow = first.blobs.fetch(server.id, hash);
    await streaming;
    expect(server.blobs.state.get().streams).toBe(1);
    await expect(second.blobs.fetch(server.id, hash)).rejects.toMatchObject({ code: 'busy' });
    expect(server.rpc.refusals.get()[second.id]).toBeUndefined();
    open.resolve();
    await slow;
    expect(server.blobs.state.get().streams).toBe(0);
    expect(await second.blobs.fetch(server.id, hash)).toMatchObject({ size: 200 * KiB });
  });

  it('stops reading when the asker goes', async () => {
    const server = await testNode();
    const hash = await server.blobs.add(bytesOf(MiB, 26));
    await server.blobs.serve(hash);
    const { methods } = server.rpc.served.get(PROTOCOLS.blobs)!;
    const gone = new AbortController();
    let emitted = 0;
    const run = methods['blob.get']!.run(
      { hash, offset: 0 },
      {
        peer: 'p',
        requestId: 'r',
        signal: gone.signal,
        emit: async () => {
          if (++emitted === 3) gone.abort();
        },
      },
    );
    await expect(run).rejects.toMatchObject({ code: 'cancelled' });
    expect(emitted).toBe(3);
  });
});

describe('base64', () => {
  it('round-trips every length, and refuses anything but padded standard base64', () => {
    for (let n = 0; n < 10; n++) expect(fromBase64(toBase64(bytesOf(n, n + 1)))).toEqual(bytesOf(n, n + 1));
    expect(toBase64(bytesOf(BLOB_CHUNK_BYTES)).length).toBe(61_440);
    for (const bad of ['abc', 'ab=c', 'a-b_', '====', 'YQ', 'Y Q==']) expect(fromBase64(bad)).toBeNull();
  });
});
