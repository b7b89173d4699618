/**
 * Agreement: after each replay, sign the roots (recordsRoot, stateRoot) of every closed epoch and gossip them;
 * count, per epoch, the permitted validators' stake that signed the same roots. When a stake majority signed
 * other roots, this node is the odd one out: it syncs with those signers so its next replay can converge.
 */
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import canonicalize from 'canonicalize';
import { z } from 'zod';
import type { NetworkConfig } from '../../shared/ledger/config.ts';
import type { ClosedEpoch } from '../../shared/ledger/replay.ts';
import type { LedgerSnapshot } from '../../shared/ledger/snapshot.ts';
import { decodeFrame, encodeFrame } from '../../shared/p2p/messages.ts';
import { fromBase64Url, toBase64Url } from '../../shared/p2p/signing.ts';
import { TOPICS } from '../../shared/names.ts';
import type { Libp2pNode } from '../platform.ts';
import { Store, type ReadableStore } from '../store.ts';
import type { RpcRouter } from './rpc.ts';
import type { Sync } from './sync.ts';

export const rootsSchema = z.object({
  network: z.string().max(32),
  netuid: z.number().int().min(0).max(1023),
  epoch: z.number().int().nonnegative(),
  recordsRoot: z.string().regex(/^[0-9a-f]{64}$/),
  stateRoot: z.string().regex(/^[0-9a-f]{64}$/),
  signer: z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{40,128}$/),
  sig: z.string().regex(/^[A-Za-z0-9_-]{1,200}$/),
});
export type SignedRoots = z.infer<typeof rootsSchema>;

export interface EpochAgreement {
  netuid: number;
  epoch: number;
  recordsRoot: string;
  stateRoot: string;
  /** Stake (rao) of permitted validators that signed these same roots, this node included if it is one. */
  agreeingStake: string;
  /** All permitted validators' stake in that epoch. */
  permittedStake: string;
  /** Signers seen with other roots. */
  disagreeing: number;
}

/** The signed bytes: domain-separated canonical JSON of everything but the signature. */
export const rootsBytes = (r: Omit<SignedRoots, 'sig'>) =>
  new TextEncoder().encode(
    'webtensor/roots/1\n' +
      canonicalize({
        network: r.network,
        netuid: r.netuid,
        epoch: r.epoch,
        recordsRoot: r.recordsRoot,
        stateRoot: r.stateRoot,
        signer: r.signer,
      }),
  );

export interface AgreementComponents {
  libp2p: Libp2pNode;
  key: PrivateKey;
  network: NetworkConfig;
  snapshot: ReadableStore<LedgerSnapshot | null>;
  sync: Pick<Sync, 'syncWith'>;
  rpc: Pick<RpcRouter, 'countRefusal'>;
}

export class Agreement {
  readonly epochs = new Store<readonly EpochAgreement[]>([]);
  private readonly self: string;
  private readonly topic: string;
  /** Signed roots seen, by "netuid/epoch", then by signer. */
  private readonly roots = new Map<string, Map<string, SignedRoots>>();
  private readonly signedByMe = new Map<string, string>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private stopWatching: (() => void) | null = null;
  private readonly onMessage = (e: CustomEvent<{ topic: string; type: string; data: Uint8Array; from?: unknown }>) => {
    if (e.detail.topic === this.topic && e.detail.type === 'signed')
      void this.receive(e.detail.data, String(e.detail.from));
  };

  constructor(private readonly components: AgreementComponents) {
    this.self = peerIdFromPrivateKey(components.key).toString();
    this.topic = TOPICS.roots(components.network.networkId);
  }

  start(): void {
    const pubsub = this.components.libp2p.services.pubsub;
    pubsub.subscribe(this.topic);
    pubsub.addEventListener('message', this.onMessage as never);
    this.stopWatching = this.components.snapshot.subscribe((s) => {
      if (!s) return;
      void this.sign(s.epochs).then(() => this.recount());
    });
    // Repeat the last epochs' roots now and then, so nodes that joined late hear them too.
    this.timer = setInterval(() => void this.regossip(), 5000);
  }

  stop(): void {
    this.components.libp2p.services.pubsub.removeEventListener('message', this.onMessage as never);
    this.stopWatching?.();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async sign(epochs: readonly ClosedEpoch[]): Promise<void> {
    for (const e of epochs) {
      const k = `${e.netuid}/${e.epoch}`;
      const roots = `${e.recordsRoot}/${e.stateRoot}`;
      if (this.signedByMe.get(k) === roots) continue;
      this.signedByMe.set(k, roots);
      const body = {
        network: this.components.network.networkId,
        netuid: e.netuid,
        epoch: e.epoch,
        recordsRoot: e.recordsRoot,
        stateRoot: e.stateRoot,
        signer: this.self,
      };
      const signed: SignedRoots = { ...body, sig: toBase64Url(await this.components.key.sign(rootsBytes(body))) };
      this.note(signed);
      await this.components.libp2p.services.pubsub.publish(this.topic, encodeFrame(signed)).catch(() => {});
    }
  }

  private async regossip(): Promise<void> {
    for (const e of this.components.snapshot.get()?.epochs.slice(-3) ?? []) {
      const mine = this.roots.get(`${e.netuid}/${e.epoch}`)?.get(this.self);
      if (mine) await this.components.libp2p.services.pubsub.publish(this.topic, encodeFrame(mine)).catch(() => {});
    }
  }

  private async receive(data: Uint8Array, from: string): Promise<void> {
    try {
      const r = decodeFrame(data, rootsSchema);
      if (r.network !== this.components.network.networkId) throw new Error('other network');
      const key = peerIdFromString(r.signer).publicKey;
      if (!key || !(await key.verify(rootsBytes(r), fromBase64Url(r.sig)))) throw new Error('bad signature');
      this.note(r);
      this.recount();
    } catch {
      this.components.rpc.countRefusal(from);
    }
  }

  private note(r: SignedRoots): void {
    const k = `${r.netuid}/${r.epoch}`;
    let bySigner = this.roots.get(k);
    if (!bySigner) this.roots.set(k, (bySigner = new Map()));
    bySigner.set(r.signer, r);
  }

  private recount(): void {
    const snapshot = this.components.snapshot.get();
    if (!snapshot) return;
    const agreement: EpochAgreement[] = [];
    for (const e of snapshot.epochs) {
      const validators = e.uids.filter((u) => u.validatorPermit);
      const stakeOf = new Map(validators.map((u) => [u.hotkey, BigInt(u.stake)]));
      const permitted = validators.reduce((s, u) => s + BigInt(u.stake), 0n);
      let agreeing = 0n;
      let disagreeing = 0;
      const others = new Map<string, { stake: bigint; signers: string[] }>();
      for (const [signer, r] of this.roots.get(`${e.netuid}/${e.epoch}`) ?? new Map<string, SignedRoots>()) {
        if (r.recordsRoot === e.recordsRoot && r.stateRoot === e.stateRoot) {
          agreeing += stakeOf.get(signer) ?? 0n;
          continue;
        }
        disagreeing++;
        const k = `${r.recordsRoot}/${r.stateRoot}`;
        const o = others.get(k) ?? { stake: 0n, signers: [] };
        o.stake += stakeOf.get(signer) ?? 0n;
        o.signers.push(signer);
        others.set(k, o);
      }
      for (const o of others.values())
        if (permitted > 0n && o.stake * 2n > permitted)
          for (const peer of o.signers) void this.components.sync.syncWith(peer);
      agreement.push({
        netuid: e.netuid,
        epoch: e.epoch,
        recordsRoot: e.recordsRoot,
        stateRoot: e.stateRoot,
        agreeingStake: agreeing.toString(),
        permittedStake: permitted.toString(),
        disagreeing,
      });
    }
    this.epochs.set(agreement);
  }
}
