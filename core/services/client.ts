/**
 * The client: ask a given miner to generate (`infer`: the signed answer is checked before it is returned), or
 * ask the network (`ask`): the subnet's miners this node reaches directly, highest last-epoch incentive first
 * (UIDs new since that epoch last), falling back to the next on error or timeout.
 */
import type { SubnetConfig } from '../../shared/ledger/config.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { checkResult, type GenerateParams, type GenerateResult } from '../../shared/inference/protocol.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import { NodeError } from '../../shared/errors.ts';
import { encodeFrame, RpcError } from '../../shared/p2p/messages.ts';
import type { Json } from '../../shared/p2p/rpc.ts';
import { waitFor, type ReadableStore } from '../store.ts';
import type { PeerTable } from './peers.ts';
import type { RpcRouter } from './rpc.ts';

export interface InferOptions {
  onText?: (text: string) => void;
  signal?: AbortSignal;
  timeoutMs?: number;
  /**
   * Return a signed answer whose tokens do not follow from its candidates, or that names another model than the
   * params asked for, instead of refusing it: a validator wants such an answer, as proof against the miner
   * (stageOneProblem, judgeStageOne), and a forwarder passes it on for the same reason.
   */
  keepInconsistent?: boolean;
}

export interface MinerCandidate {
  uid: number;
  hotkey: string;
  /** Last closed epoch's incentive (u16), or -1 for a UID that was not in it. */
  incentive: number;
}

/** Progress of one `ask`, for a page to render as it arrives. */
export interface AskProgress {
  text: string;
  miner: MinerCandidate | null;
  /** Miners that failed before this one, with the reason. */
  tried: { miner: MinerCandidate; reason: string }[];
}

export interface AskResult extends AskProgress {
  /** What the miner was asked, exactly (its signed result names them by hash: an audit needs both). */
  params: GenerateParams;
  result: GenerateResult;
  latencyMs: number;
  tokensPerSecond: number;
}

export interface ClientComponents {
  rpc: RpcRouter;
  peers: Pick<PeerTable, 'direct' | 'peers'>;
  /** The latest replay (null on a node without a network). */
  snapshot: ReadableStore<LedgerSnapshot | null> | null;
}

/** Miners of `netuid` among `reachable` peers, highest incentive in the last closed epoch first. */
export function rankMiners(snapshot: LedgerSnapshot | null, netuid: number, reachable: Set<string>): MinerCandidate[] {
  const sub = snapshot?.subnets.find((s) => s.netuid === netuid);
  const last = snapshot?.epochs.filter((e) => e.netuid === netuid).at(-1);
  const incentive = (uid: number, hotkey: string) =>
    last?.uids[uid]?.hotkey === hotkey ? last.uids[uid]!.incentive : -1;
  return (sub?.uids ?? [])
    .map((u, uid) => ({ uid, hotkey: u.hotkey, role: u.role }))
    .filter((u) => u.role === 'miner' && reachable.has(u.hotkey))
    .map(({ uid, hotkey }) => ({ uid, hotkey, incentive: incentive(uid, hotkey) }))
    .sort((a, b) => b.incentive - a.incentive || a.uid - b.uid);
}

export class Client {
  constructor(private readonly components: ClientComponents) {}

  /** Ask `peer` to generate. Text pieces arrive through `onText`; aborting `signal` cancels the miner's work. */
  async infer(peer: string, params: GenerateParams, options: InferOptions = {}): Promise<GenerateResult> {
    const req = await this.components.rpc.signedRequest('infer.generate', params as Json);
    const raw = await this.components.rpc.exchangeFrames(peer, [encodeFrame(req)], req.id, {
      protocol: PROTOCOLS.infer,
      timeoutMs: options.timeoutMs ?? 30_000,
      ...(options.signal ? { signal: options.signal } : {}),
      onChunk: (c) => {
        const text = (c as { text?: unknown } | null)?.text;
        if (typeof text === 'string') options.onText?.(text);
      },
    });
    const problem = await checkResult(raw, {
      miner: peer,
      requestId: req.id,
      params,
      skipStageOne: options.keepInconsistent === true,
    });
    if (problem) throw new RpcError('bad-frame', `the miner's answer was refused: ${problem}`);
    const result = raw as GenerateResult;
    // Signed over params that name another model: refused, or kept as proof like an inconsistent answer.
    if (result.model !== params.model && options.keepInconsistent !== true)
      throw new RpcError('bad-frame', `the miner answered with ${result.model}, not the ${params.model} asked for`);
    return result;
  }

  /**
   * The miners `ask` would try for `subnet`, in order: those this node is connected to first (they answered
   * recently), then the others (a node keeps a few connections, not one to everyone: those connect on demand).
   */
  candidates(subnet: SubnetConfig): MinerCandidate[] {
    const snapshot = this.components.snapshot?.get() ?? null;
    const connected = rankMiners(snapshot, subnet.netuid, new Set(this.components.peers.direct()));
    const everyone = new Set(snapshot?.subnets.find((s) => s.netuid === subnet.netuid)?.uids.map((u) => u.hotkey));
    for (const c of connected) everyone.delete(c.hotkey);
    return [...connected, ...rankMiners(snapshot, subnet.netuid, everyone)];
  }

  /**
   * Resolve with the candidates for `subnet` once there is at least one, waiting up to `waitMs` (a node that
   * just joined learns the miners from its first sync and connects to them within seconds).
   */
  async awaitCandidates(subnet: SubnetConfig, waitMs: number): Promise<MinerCandidate[]> {
    const now = this.candidates(subnet);
    if (now.length > 0 || waitMs <= 0 || !this.components.snapshot) return now;
    const done = new AbortController();
    const timer = setTimeout(() => done.abort(), waitMs);
    const some = () => this.candidates(subnet).length > 0;
    await Promise.race([
      waitFor(this.components.snapshot, some, done.signal),
      waitFor(this.components.peers.peers, some, done.signal),
    ]).catch(() => {});
    // Whichever wait did not finish unsubscribes now.
    clearTimeout(timer);
    done.abort();
    return this.candidates(subnet);
  }

  /** Ask the subnet's best reachable miner, falling back down the list. */
  async ask(
    subnet: SubnetConfig,
    prompt: string,
    maxNewTokens: number,
    onProgress: (p: AskProgress) => void = () => {},
    options: { waitForMinersMs?: number } = {},
  ): Promise<AskResult> {
    const list = await this.awaitCandidates(subnet, options.waitForMinersMs ?? 10_000);
    if (list.length === 0)
      throw new NodeError(
        'no-miner',
        'No miner of this subnet is connected to this node yet. Wait a few seconds, or start a miner.',
      );
    const tried: AskProgress['tried'] = [];
    for (const miner of list) {
      const start = performance.now();
      let text = '';
      onProgress({ text, miner, tried });
      const params: GenerateParams = { model: subnet.model, prompt, maxNewTokens };
      try {
        const result = await this.infer(miner.hotkey, params, {
          timeoutMs: 20_000,
          onText: (t) => onProgress({ text: (text += t), miner, tried }),
        });
        const latencyMs = performance.now() - start;
        return {
          text: result.text,
          miner,
          tried,
          params,
          result,
          latencyMs,
          tokensPerSecond: (result.tokenIds.length * 1000) / latencyMs,
        };
      } catch (err) {
        tried.push({ miner, reason: err instanceof RpcError ? err.code : (err as Error).message });
      }
    }
    throw new NodeError('no-miner', `Every connected miner failed: ${tried.map((t) => t.reason).join('; ')}.`);
  }
}
