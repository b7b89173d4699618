/**
 * The RPC router: serves the signed request/response protocols (`/webtensor/rpc/1`, `/infer/1`, `/sync/1`) with
 * the checks of `shared/p2p/rpc.ts`, and calls them on peers with requests signed by this node's key. It keeps
 * this node's local view of who sends garbage: every refused request counts against its sender.
 */
import type { PrivateKey, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { RpcServer, exchange, type Json, type Method } from '../../shared/p2p/rpc.ts';
import { encodeFrame, RpcError, type ErrorCode, type RpcRequest } from '../../shared/p2p/messages.ts';
import { signRequest } from '../../shared/p2p/signing.ts';
import type { Clock, Libp2pNode } from '../platform.ts';
import { Store } from '../store.ts';

export interface RpcRouterComponents {
  libp2p: Libp2pNode;
  key: PrivateKey;
  clock: Clock;
  /** Connects to a peer this node holds no connection to (nodes keep a bounded few: Discovery.reach). */
  reach?: { reach(peer: string, signal: AbortSignal): Promise<void>; touch(peer: string): void };
}

export interface HandleOptions {
  maxInboundStreams?: number;
  /** Called for every refusal before it is counted; return false to not count it (busy, cancelled). */
  onRefused?: (peer: string, code: ErrorCode) => boolean;
}

export interface CallOptions {
  protocol: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  onChunk?: (chunk: Json) => void;
}

let requestCounter = 0;

/** The share of a call's time a stream may take to open on a connection already held (openStream). */
export const STREAM_OPEN_SHARE = 0.5;

export class RpcRouter {
  /** Requests refused per peer. */
  readonly refusals = new Store<Readonly<Record<string, number>>>({});
  /** Connections aborted because no stream would open on them (openStream). */
  brokenConnections = 0;
  private readonly self: string;

  constructor(private readonly components: RpcRouterComponents) {
    this.self = components.libp2p.peerId.toString();
  }

  /** Serve `methods` on `protocol`. */
  async handle(protocol: string, methods: Record<string, Method>, options: HandleOptions = {}): Promise<void> {
    const server = new RpcServer({
      methods,
      now: () => this.components.clock.now(),
      onRefused: (peer, code) => {
        if (options.onRefused?.(peer, code) !== false) this.countRefusal(peer);
      },
    });
    await this.components.libp2p.handle(
      protocol,
      (stream, connection) => server.handle(stream, connection.remotePeer.toString()),
      options.maxInboundStreams ? { maxInboundStreams: options.maxInboundStreams } : {},
    );
  }

  /** Count something a peer sent that this node refused (also for gossip and sync, not only RPC). */
  countRefusal(peer: string): void {
    if (peer === this.self) return;
    const all = this.refusals.get();
    this.refusals.set({ ...all, [peer]: (all[peer] ?? 0) + 1 });
  }

  /** A request signed by this node. */
  signedRequest(method: string, params: Json): Promise<RpcRequest> {
    const now = this.components.clock.now();
    return signRequest(this.components.key, {
      id: `${now.toString(36)}-${(requestCounter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      method,
      params,
      ts: now,
      from: this.self,
    });
  }

  /** Call `method` on `peer`; rejects with RpcError (the peer's code, or timeout / cancelled / internal). */
  async call(peer: string, method: string, params: Json, options: CallOptions): Promise<Json> {
    const req = await this.signedRequest(method, params);
    return this.exchangeFrames(peer, [encodeFrame(req)], req.id, options);
  }

  /**
   * A stream to `peer` for `protocol`. On a connection already open, the stream gets half the call's time: a
   * WebRTC connection can stay listed as connected while its new data channels never open (mesh.spec: a tab's
   * every call and sync to one peer timed out while the others worked). Such a connection is aborted, and the
   * stream opened on a new one with the time left. Nothing was sent on the failed stream, so this retries
   * nothing the peer has seen.
   */
  private async openStream(peer: string, protocol: string, signal: AbortSignal, timeoutMs: number): Promise<Stream> {
    const { libp2p, reach } = this.components;
    const id = peerIdFromString(peer);
    const connect = async () => {
      if (reach && libp2p.getConnections(id).length === 0) await reach.reach(peer, signal);
      reach?.touch(peer);
    };
    const held = libp2p.getConnections(id).filter((c) => c.status === 'open' && c.limits == null);
    if (held.length === 0) {
      await connect();
      return libp2p.dialProtocol(id, protocol, { signal });
    }
    reach?.touch(peer);
    // Only a stream that does not open in its share says the connection is broken (below).
    const share = AbortSignal.timeout(Math.round(timeoutMs * STREAM_OPEN_SHARE));
    try {
      return await libp2p.dialProtocol(id, protocol, { signal: AbortSignal.any([signal, share]) });
    } catch (err) {
      // The call's own deadline, the caller's cancel, or an answer (the protocol refused): not this connection.
      if (signal.aborted || !share.aborted) throw err;
      this.brokenConnections++;
      const reason = new Error(`no ${protocol} stream opened in ${Math.round(timeoutMs * STREAM_OPEN_SHARE)} ms`);
      for (const c of held) c.abort(reason);
      await connect();
      return libp2p.dialProtocol(id, protocol, { signal });
    }
  }

  /** Send frames as they are (diagnostics: what does a peer answer to garbage?) and read the replies. */
  async exchangeFrames(peer: string, frames: Uint8Array[], id: string, options: CallOptions): Promise<Json> {
    const signal = AbortSignal.any([
      AbortSignal.timeout(options.timeoutMs ?? 10_000),
      ...(options.signal ? [options.signal] : []),
    ]);
    const failure = (err: unknown) => {
      if (err instanceof RpcError) return err;
      if (options.signal?.aborted) return new RpcError('cancelled', 'you cancelled the request');
      return new RpcError(signal.aborted ? 'timeout' : 'internal', (err as Error).message);
    };
    let stream;
    try {
      stream = await this.openStream(peer, options.protocol, signal, options.timeoutMs ?? 10_000);
    } catch (err) {
      const e = failure(err);
      throw new RpcError(e.code, `could not reach ${peer}: ${e.message}`);
    }
    try {
      return await exchange(stream, frames, id, signal, options.onChunk);
    } catch (err) {
      throw failure(err);
    }
  }
}
