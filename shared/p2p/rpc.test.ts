/**
 * The RPC server over real libp2p stream pairs (in memory): good requests are answered and streamed; every kind
 * of bad input gets its typed error and never reaches the handler.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { streamPair } from '@libp2p/utils';
import { describe, expect, it } from 'vitest';
import { MAX_FRAME_BYTES, RpcError, encodeFrame, type RpcRequest } from './messages.ts';
import { RpcServer, exchange, type Json } from './rpc.ts';
import { signRequest } from './signing.ts';

const alice = await generateKeyPair('Ed25519');
const aliceId = peerIdFromPrivateKey(alice).toString();
const mallory = await generateKeyPair('Ed25519');
const malloryId = peerIdFromPrivateKey(mallory).toString();

function server(calls: Json[] = [], now = () => Date.now()) {
  return new RpcServer({
    now,
    methods: {
      echo: { run: async (params) => (calls.push(params), params) },
      count: {
        check: (p) => (typeof p === 'number' && p >= 0 && p <= 10 ? null : 'params must be a number from 0 to 10'),
        run: async (p, ctx) => {
          for (let k = 0; k < (p as number); k++) await ctx.emit(k);
          return 'done';
        },
      },
    },
  });
}

let counter = 0;
async function request(method: string, params: Json, over: Partial<RpcRequest> = {}, key = alice): Promise<RpcRequest> {
  const from = peerIdFromPrivateKey(key).toString();
  const signed = await signRequest(key, { id: `r${counter++}`, method, params, ts: Date.now(), from });
  return { ...signed, ...over };
}

/** Send frames from `peer` to a server and return its answer (or the RpcError it sent). */
async function call(srv: RpcServer, frames: Uint8Array[], id: string, peer = aliceId, chunks: Json[] = []) {
  const [client, remote] = await streamPair();
  const served = srv.handle(remote, peer);
  try {
    return await exchange(client, frames, id, AbortSignal.timeout(5000), (c) => chunks.push(c));
  } catch (err) {
    return err as RpcError;
  } finally {
    await served;
  }
}

describe('RpcServer', () => {
  it("tells a handler when its caller cancels, through the handler's signal", async () => {
    let sawAbort!: () => void;
    const aborted = new Promise<void>((r) => (sawAbort = r));
    const refused: string[] = [];
    const srv = new RpcServer({
      methods: {
        slow: {
          run: async (_p, ctx) => {
            await ctx.emit('started');
            await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
            sawAbort();
            return 'too late';
          },
        },
      },
      onRefused: (_peer, code) => refused.push(code),
    });
    const req = await request('slow', null);
    const [client, remote] = await streamPair();
    const served = srv.handle(remote, aliceId);
    const cancel = new AbortController();
    const outcome = exchange(client, [encodeFrame(req)], req.id, cancel.signal, () => cancel.abort()).catch(
      (e: Error) => e,
    );
    await aborted; // the handler learned of the cancellation without any timeout
    expect(await outcome).toBeInstanceOf(Error);
    await served;
    expect(refused).toEqual(['cancelled']);
  });

  it('answers a signed request and streams chunks before the result', async () => {
    const srv = server();
    const chunks: Json[] = [];
    const req = await request('count', 3);
    expect(await call(srv, [encodeFrame(req)], req.id, aliceId, chunks)).toBe('done');
    expect(chunks).toEqual([0, 1, 2]);
  });

  const refusals: [string, () => Promise<{ frames: Uint8Array[]; id: string; peer?: string }>, string][] = [
    [
      'an oversized frame',
      async () => ({ frames: [new Uint8Array(MAX_FRAME_BYTES + 10).fill(32)], id: 'unknown' }),
      'too-large',
    ],
    [
      'a frame that is not JSON',
      async () => ({ frames: [new TextEncoder().encode('{nope')], id: 'unknown' }),
      'bad-frame',
    ],
    [
      'a request missing fields',
      async () => ({ frames: [encodeFrame({ t: 'req', id: 'x1' })], id: 'x1' }),
      'bad-schema',
    ],
    [
      'an unsigned request',
      async () => {
        const r = await request('echo', 1);
        return { frames: [encodeFrame({ ...r, sig: 'AAAA' })], id: r.id };
      },
      'bad-signature',
    ],
    [
      'a request whose params were changed after signing',
      async () => {
        const r = await request('echo', 1);
        return { frames: [encodeFrame({ ...r, params: 2 })], id: r.id };
      },
      'bad-signature',
    ],
    [
      'a request signed by someone other than the connection',
      async () => {
        const r = await request('echo', 1, {}, mallory);
        return { frames: [encodeFrame(r)], id: r.id, peer: aliceId };
      },
      'wrong-sender',
    ],
    [
      'a stale request',
      async () => {
        const r = await signRequest(alice, {
          id: 'old1',
          method: 'echo',
          params: 1,
          ts: Date.now() - 60_000,
          from: aliceId,
        });
        return { frames: [encodeFrame(r)], id: r.id };
      },
      'stale',
    ],
    [
      'an unknown method',
      async () => {
        const r = await request('nope', 1);
        return { frames: [encodeFrame(r)], id: r.id };
      },
      'unknown-method',
    ],
    [
      'bad params',
      async () => {
        const r = await request('count', 99);
        return { frames: [encodeFrame(r)], id: r.id };
      },
      'bad-params',
    ],
  ];
  for (const [what, make, code] of refusals) {
    it(`refuses ${what} with "${code}" and never runs the handler`, async () => {
      const calls: Json[] = [];
      const srv = server(calls);
      const { frames, id, peer } = await make();
      const answer = await call(srv, frames, id, peer ?? aliceId);
      expect(answer).toBeInstanceOf(RpcError);
      expect((answer as RpcError).code).toBe(code);
      expect(calls).toEqual([]);
    });
  }

  it('refuses a replayed request', async () => {
    const calls: Json[] = [];
    const srv = server(calls);
    const r = await request('echo', 'hi');
    expect(await call(srv, [encodeFrame(r)], r.id)).toBe('hi');
    const again = await call(srv, [encodeFrame(r)], r.id);
    expect((again as RpcError).code).toBe('replay');
    expect(calls).toEqual(['hi']);
  });

  it('rate-limits a flooding peer without affecting another', async () => {
    const frozen = Date.now(); // no refill during the flood: the limit is about counts, not this machine's speed
    const srv = server([], () => frozen);
    const codes: string[] = [];
    for (let k = 0; k < 110; k++) {
      const r = await request('echo', k);
      const a = await call(srv, [encodeFrame(r)], r.id);
      codes.push(a instanceof RpcError ? a.code : 'ok');
    }
    expect(codes.filter((c) => c === 'ok')).toHaveLength(100); // the burst
    expect(codes.filter((c) => c === 'rate-limited')).toHaveLength(10);
    const other = await request('echo', 'fine', {}, mallory);
    expect(await call(srv, [encodeFrame(other)], other.id, malloryId)).toBe('fine');
  });

  it('closes the client end after the final reply, so streams do not pile up on a connection', async () => {
    const [client, remote] = await streamPair();
    const served = server().handle(remote, aliceId);
    const r = await request('echo', 'x');
    expect(await exchange(client, [encodeFrame(r)], r.id, AbortSignal.timeout(5000))).toBe('x');
    await served;
    expect(client.writeStatus).not.toBe('writable');
    expect(remote.writeStatus).not.toBe('writable');
  });

  it('survives a peer that closes the stream without sending anything', async () => {
    const [client, remote] = await streamPair();
    const served = server().handle(remote, aliceId);
    await client.close();
    await expect(served).resolves.toBeUndefined();
  });
});
