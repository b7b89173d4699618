/**
 * A tab's part in the ledger: it keeps every valid record in IndexedDB (LedgerDb), gets new ones by gossip and
 * missing ones by anti-entropy sync (/webtensor/sync/1), publishes its own (signed with the node key), has the
 * consensus worker replay the ledger as blocks pass, and signs and gossips the roots of each closed epoch so
 * nodes can see whether they agree. Everything a peer sends is checked before it is stored; refusals are counted
 * against the peer.
 */
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import canonicalize from 'canonicalize';
import { proxy } from 'comlink';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { z } from 'zod';
import { blockAt, findSubnet, type NetworkConfig } from '../../../shared/ledger/config.ts';
import { LedgerDb, SYNC_BUCKET_BLOCKS, type StoredRecordRow } from '../../../shared/ledger/db.ts';
import { faucetKey } from '../../../shared/ledger/faucet.ts';
import {
  checkRecord,
  RecordRefused,
  signRecord,
  type Body,
  type LedgerRecord,
  type RecordKind,
} from '../../../shared/ledger/records.ts';
import type { ClosedEpoch } from '../../../shared/ledger/replay.ts';
import type { PowProgress } from '../../../shared/ledger/pow.ts';
import { decodeFrame, encodeFrame } from '../../../shared/p2p/messages.ts';
import { RpcServer, type Json } from '../../../shared/p2p/rpc.ts';
import { fromBase64Url, toBase64Url } from '../../../shared/p2p/signing.ts';
import type { LedgerSnapshot } from '../../../worker/yuma.worker.ts';
import { yumaWorker } from '../yuma-client.ts';
import type { TabNode } from './libp2p.ts';
import { storageErrorSentence } from './db.ts';

export const SYNC_PROTOCOL = '/webtensor/sync/1';
const recordsTopic = (network: string) => `webtensor/${network}/records/1`;
const rootsTopic = (network: string) => `webtensor/${network}/roots/1`;

const rootsSchema = z.object({
  network: z.string().max(32),
  netuid: z.number().int().min(0).max(1023),
  epoch: z.number().int().nonnegative(),
  recordsRoot: z.string().regex(/^[0-9a-f]{64}$/),
  stateRoot: z.string().regex(/^[0-9a-f]{64}$/),
  signer: z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{40,128}$/),
  sig: z.string().regex(/^[A-Za-z0-9_-]{1,200}$/),
});
type SignedRoots = z.infer<typeof rootsSchema>;

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

export interface RegistrationState {
  netuid: number;
  phase: 'idle' | 'hashing' | 'published' | 'registered' | 'error';
  hashes: number;
  expected: number;
  uid: number | null;
  error: string | null;
}

export interface LedgerView {
  network: NetworkConfig;
  block: number;
  /** Records this node holds for the network. */
  records: number;
  snapshot: LedgerSnapshot | null;
  agreement: EpochAgreement[];
  registration: RegistrationState | null;
  /** Records refused on arrival, by peer. */
  refusedRecords: number;
  syncs: number;
  /** The last thing that went wrong here, as a sentence (e.g. storage full), or null. */
  error: string | null;
}

const rootsBytes = (r: Omit<SignedRoots, 'sig'>) =>
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

export class LedgerNode extends EventTarget {
  readonly db: LedgerDb;
  view: LedgerView;
  private readonly self: string;
  private timer: ReturnType<typeof setInterval> | null = null;
  private ticks = 0;
  private dirty = true;
  private computing = false;
  private lastCloseThrough = -1;
  /** Signed roots seen, by "netuid/epoch", then by signer. */
  private readonly roots = new Map<string, Map<string, SignedRoots>>();
  private readonly signedByMe = new Map<string, string>();
  private nextSeq = 1;
  private readonly seqReady: Promise<void>;

  constructor(
    private readonly node: TabNode,
    private readonly key: PrivateKey,
    readonly slot: number,
    readonly config: NetworkConfig,
    private readonly onRefused: (peer: string) => void,
  ) {
    super();
    this.db = new LedgerDb(slot);
    this.self = node.peerId.toString();
    this.view = {
      network: config,
      block: blockAt(config, Date.now()),
      records: 0,
      snapshot: null,
      agreement: [],
      registration: null,
      refusedRecords: 0,
      syncs: 0,
      error: null,
    };
    this.seqReady = this.db.records
      .where('[network+author]')
      .between([config.networkId, this.self], [config.networkId, this.self])
      .toArray()
      .then((mine) => void (this.nextSeq = Math.max(0, ...mine.map((r) => r.record.seq)) + 1));
  }

  private update(patch: Partial<LedgerView>) {
    this.view = { ...this.view, ...patch };
    this.dispatchEvent(new Event('change'));
  }

  get block(): number {
    return blockAt(this.config, Date.now());
  }

  async start(): Promise<void> {
    await this.seqReady;
    const pubsub = this.node.services.pubsub;
    pubsub.subscribe(recordsTopic(this.config.networkId));
    pubsub.subscribe(rootsTopic(this.config.networkId));
    pubsub.addEventListener('message', (e) => {
      if (e.detail.type !== 'signed') return;
      const from = e.detail.from.toString();
      if (e.detail.topic === recordsTopic(this.config.networkId)) void this.receiveGossipRecord(e.detail.data, from);
      else if (e.detail.topic === rootsTopic(this.config.networkId)) void this.receiveRoots(e.detail.data, from);
    });
    await this.serveSync();
    this.update({ records: await this.db.records.where('network').equals(this.config.networkId).count() });
    this.timer = setInterval(() => void this.tick(), 1000);
    void this.tick();
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  // ---- records -------------------------------------------------------------------------------------------

  /** The oldest block a gossiped record may carry: epochs closed beyond the reorg window are final. */
  private minBlock(): number {
    const tempo = Math.min(...this.config.subnets.map((s) => s.tempo));
    const closedEpochs = Math.floor((this.block - this.config.graceBlocks) / tempo);
    return Math.max(0, (closedEpochs - this.config.reorgEpochs) * tempo);
  }

  /** Check and store one record from a peer (or ourselves). Returns false if it was refused or already held. */
  private async accept(raw: unknown, source: string, stale: boolean): Promise<boolean> {
    return (await this.acceptMany([raw], source, stale)) === 1;
  }

  /**
   * Check records, then store the new ones in one transaction and tell the page once: a sync of thousands of
   * records must not write (or re-render) once per record. Returns how many were new. Our own records throw
   * their refusal; a peer's count against it.
   */
  private async acceptMany(raws: unknown[], source: string, stale: boolean): Promise<number> {
    const at = { nowBlock: this.block, minBlock: stale ? this.minBlock() : 0 };
    const checked: StoredRecordRow[] = [];
    let refused = 0;
    for (const raw of raws) {
      try {
        const { record, id } = await checkRecord(raw, this.config, at);
        checked.push({
          id,
          network: record.network,
          block: record.block,
          author: record.author,
          kind: record.kind,
          record,
          source,
          receivedAt: Date.now(),
        });
      } catch (err) {
        if (!(err instanceof RecordRefused)) throw err;
        if (source === 'self') throw err;
        refused++;
        const peer = source.split(':')[1];
        if (peer && peer !== this.self) this.onRefused(peer);
      }
    }
    const held = await this.db.records.bulkGet(checked.map((r) => r.id));
    const fresh = [...new Map(checked.filter((_, k) => !held[k]).map((r) => [r.id, r])).values()];
    if (fresh.length > 0) {
      try {
        await this.db.records.bulkPut(fresh);
      } catch (err) {
        const sentence = storageErrorSentence(err);
        this.update({ error: sentence });
        throw new Error(sentence, { cause: err });
      }
      this.dirty = true;
    }
    if (fresh.length > 0 || refused > 0)
      this.update({ records: this.view.records + fresh.length, refusedRecords: this.view.refusedRecords + refused });
    return fresh.length;
  }

  private async receiveGossipRecord(data: Uint8Array, from: string) {
    let raw: unknown;
    try {
      raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
    } catch {
      this.onRefused(from);
      return;
    }
    await this.accept(raw, `gossip:${from}`, true).catch(() => {}); // a storage failure is shown in the view
  }

  /** Sign, store and gossip a record of ours. Throws RecordRefused if it fails our own checks. */
  async publish<K extends RecordKind>(kind: K, body: Body<K>, key = this.key): Promise<LedgerRecord> {
    const author =
      key === this.key ? this.self : (await import('@libp2p/peer-id')).peerIdFromPrivateKey(key).toString();
    // Other keys (the test faucet) may be used by several tabs at once: a time-based sequence keeps theirs apart.
    const seq = author === this.self ? this.nextSeq++ : Math.max(await this.seqOf(author), Date.now());
    const record = await signRecord(key, {
      v: 1,
      network: this.config.networkId,
      kind,
      author,
      seq,
      block: this.block,
      body,
    } as never);
    await this.accept(record, 'self', false);
    await this.node.services.pubsub
      .publish(recordsTopic(this.config.networkId), new TextEncoder().encode(JSON.stringify(record)))
      .catch(() => {}); // no subscribers yet: sync delivers it later
    return record;
  }

  private async seqOf(author: string): Promise<number> {
    const rows = await this.db.records
      .where('[network+author]')
      .between([this.config.networkId, author], [this.config.networkId, author])
      .toArray();
    return Math.max(0, ...rows.map((r) => r.record.seq)) + 1;
  }

  /** Check and store records handed over in bulk (diagnostics and benchmarks); counts what was accepted. */
  async importRecords(raws: unknown[]): Promise<{ accepted: number; refused: number; ms: number }> {
    const start = performance.now();
    let accepted = 0;
    for (let k = 0; k < raws.length; k += 500)
      accepted += await this.acceptMany(raws.slice(k, k + 500), 'import', false);
    return { accepted, refused: raws.length - accepted, ms: performance.now() - start };
  }

  /** Replay now in the worker (diagnostics and benchmarks). */
  async replayNow(): Promise<LedgerSnapshot> {
    while (this.computing) await new Promise((r) => setTimeout(r, 20));
    this.computing = true;
    try {
      const snapshot = await yumaWorker().computeLedger(
        this.slot,
        this.config,
        Math.max(0, this.block - this.config.graceBlocks),
      );
      this.update({ snapshot });
      return snapshot;
    } finally {
      this.computing = false;
    }
  }

  /** Test profile only: the faucet stakes `amount` rao on `hotkey` (a real signed stake.add record). */
  async faucetStake(hotkey: string, amount: bigint): Promise<void> {
    await this.publish('stake.add', { hotkey, amount: amount.toString() }, await faucetKey(this.config));
  }

  // ---- registration --------------------------------------------------------------------------------------

  /** Mine the registration proof of work in the worker (progress shown), then publish the record. */
  async register(netuid: number, role: 'miner' | 'validator'): Promise<void> {
    const subnet = findSubnet(this.config, netuid);
    if (!subnet) throw new Error(`This network has no subnet ${netuid}.`);
    const reg: RegistrationState = {
      netuid,
      phase: 'hashing',
      hashes: 0,
      expected: 2 ** subnet.registrationDifficulty,
      uid: null,
      error: null,
    };
    this.update({ registration: reg });
    try {
      const block = this.block;
      const { nonce } = await yumaWorker().solveRegistration(
        {
          network: this.config.networkId,
          netuid,
          author: this.self,
          block,
          difficulty: subnet.registrationDifficulty,
        },
        proxy((p: PowProgress) => this.update({ registration: { ...this.view.registration!, hashes: p.hashes } })),
      );
      const record = await signRecord(this.key, {
        v: 1,
        network: this.config.networkId,
        kind: 'register',
        author: this.self,
        seq: this.nextSeq++,
        block,
        body: { netuid, nonce, role },
      });
      await this.accept(record, 'self', false);
      await this.node.services.pubsub
        .publish(recordsTopic(this.config.networkId), new TextEncoder().encode(JSON.stringify(record)))
        .catch(() => {});
      this.update({ registration: { ...this.view.registration!, phase: 'published' } });
    } catch (err) {
      this.update({ registration: { ...this.view.registration!, phase: 'error', error: (err as Error).message } });
      throw err;
    }
  }

  /** This node's UID on a subnet in the latest replay, or null. */
  uidOn(netuid: number): number | null {
    const sub = this.view.snapshot?.subnets.find((s) => s.netuid === netuid);
    const uid = sub?.uids.findIndex((u) => u.hotkey === this.self) ?? -1;
    return uid < 0 ? null : uid;
  }

  // ---- replay and agreement ------------------------------------------------------------------------------

  private async tick() {
    this.ticks++;
    const block = this.block;
    const closeThrough = Math.max(0, block - this.config.graceBlocks);
    const boundaryPassed = this.config.subnets.some(
      (s) => Math.floor(closeThrough / s.tempo) !== Math.floor(this.lastCloseThrough / s.tempo),
    );
    this.update({ block });
    if ((this.dirty || boundaryPassed) && !this.computing) {
      this.computing = true;
      this.dirty = false;
      try {
        const snapshot = await yumaWorker().computeLedger(this.slot, this.config, closeThrough);
        this.lastCloseThrough = closeThrough;
        this.update({ snapshot });
        const reg = this.view.registration;
        const mine = reg ? this.uidOn(reg.netuid) : null;
        if (reg && mine !== null && (reg.phase !== 'registered' || reg.uid !== mine))
          this.update({ registration: { ...reg, phase: 'registered', uid: mine } });
        await this.signRoots(snapshot.epochs);
        this.recountAgreement();
      } catch (err) {
        this.dirty = true;
        console.warn('ledger replay failed', err);
      } finally {
        this.computing = false;
      }
    }
    if (this.ticks % 3 === 0) void this.syncWithSomeone();
    if (this.ticks % 5 === 0) void this.regossipRoots();
  }

  private async signRoots(epochs: ClosedEpoch[]) {
    for (const e of epochs) {
      const k = `${e.netuid}/${e.epoch}`;
      const roots = `${e.recordsRoot}/${e.stateRoot}`;
      if (this.signedByMe.get(k) === roots) continue;
      this.signedByMe.set(k, roots);
      const body = {
        network: this.config.networkId,
        netuid: e.netuid,
        epoch: e.epoch,
        recordsRoot: e.recordsRoot,
        stateRoot: e.stateRoot,
        signer: this.self,
      };
      const signed: SignedRoots = { ...body, sig: toBase64Url(await this.key.sign(rootsBytes(body))) };
      this.noteRoots(signed);
      await this.node.services.pubsub.publish(rootsTopic(this.config.networkId), encodeFrame(signed)).catch(() => {});
    }
  }

  /** Repeat the last epochs' roots now and then, so tabs that joined late hear them too. */
  private async regossipRoots() {
    const epochs = this.view.snapshot?.epochs.slice(-3) ?? [];
    for (const e of epochs) {
      const mine = this.roots.get(`${e.netuid}/${e.epoch}`)?.get(this.self);
      if (mine)
        await this.node.services.pubsub.publish(rootsTopic(this.config.networkId), encodeFrame(mine)).catch(() => {});
    }
  }

  private async receiveRoots(data: Uint8Array, from: string) {
    try {
      const r = decodeFrame(data, rootsSchema);
      if (r.network !== this.config.networkId) throw new Error('other network');
      const key = peerIdFromString(r.signer).publicKey;
      if (!key || !(await key.verify(rootsBytes(r), fromBase64Url(r.sig)))) throw new Error('bad signature');
      this.noteRoots(r);
      this.recountAgreement();
    } catch {
      this.onRefused(from);
    }
  }

  private noteRoots(r: SignedRoots) {
    const k = `${r.netuid}/${r.epoch}`;
    let bySigner = this.roots.get(k);
    if (!bySigner) this.roots.set(k, (bySigner = new Map()));
    bySigner.set(r.signer, r);
  }

  /**
   * For each closed epoch: the permitted validators' stake behind our roots. When a stake majority signed
   * other roots, we are the odd one out: sync with those signers so the next replay can converge.
   */
  private recountAgreement() {
    const snapshot = this.view.snapshot;
    if (!snapshot) return;
    const agreement: EpochAgreement[] = [];
    for (const e of snapshot.epochs) {
      const validators = e.uids.filter((u) => u.validatorPermit);
      const stakeOf = new Map(validators.map((u) => [u.hotkey, BigInt(u.stake)]));
      const permitted = validators.reduce((s, u) => s + BigInt(u.stake), 0n);
      const signed = this.roots.get(`${e.netuid}/${e.epoch}`) ?? new Map<string, SignedRoots>();
      let agreeing = 0n;
      let disagreeing = 0;
      const others = new Map<string, { stake: bigint; signers: string[] }>();
      for (const [signer, r] of signed) {
        const same = r.recordsRoot === e.recordsRoot && r.stateRoot === e.stateRoot;
        if (same) agreeing += stakeOf.get(signer) ?? 0n;
        else {
          disagreeing++;
          const k = `${r.recordsRoot}/${r.stateRoot}`;
          const o = others.get(k) ?? { stake: 0n, signers: [] };
          o.stake += stakeOf.get(signer) ?? 0n;
          o.signers.push(signer);
          others.set(k, o);
        }
      }
      for (const o of others.values())
        if (permitted > 0n && o.stake * 2n > permitted) for (const peer of o.signers) void this.syncWith(peer);
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
    this.update({ agreement });
  }

  // ---- anti-entropy sync ---------------------------------------------------------------------------------

  private async localRows(): Promise<StoredRecordRow[]> {
    return this.db.records.where('network').equals(this.config.networkId).toArray();
  }

  private static digests(rows: StoredRecordRow[]): Record<string, string> {
    const buckets = new Map<number, string[]>();
    for (const r of rows) {
      const b = Math.floor(r.block / SYNC_BUCKET_BLOCKS);
      const ids = buckets.get(b) ?? [];
      ids.push(r.id);
      buckets.set(b, ids);
    }
    const out: Record<string, string> = {};
    for (const [b, ids] of buckets)
      out[String(b)] = bytesToHex(sha256(new TextEncoder().encode(ids.sort().join('\n'))));
    return out;
  }

  private async serveSync() {
    const idsSchema = z.object({ buckets: z.array(z.number().int().nonnegative()).max(200) });
    const wantSchema = z.object({ ids: z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(200) });
    const server = new RpcServer({
      methods: {
        'sync.digests': { run: async () => ({ buckets: LedgerNode.digests(await this.localRows()) }) },
        'sync.ids': {
          check: (p) => (idsSchema.safeParse(p).success ? null : 'params must be {buckets: number[] (at most 200)}'),
          run: async (p, ctx) => {
            const wanted = new Set(idsSchema.parse(p).buckets);
            const ids = (await this.localRows())
              .filter((r) => wanted.has(Math.floor(r.block / SYNC_BUCKET_BLOCKS)))
              .map((r) => r.id);
            for (let k = 0; k < ids.length; k += 500) await ctx.emit(ids.slice(k, k + 500));
            return ids.length;
          },
        },
        'sync.records': {
          check: (p) => (wantSchema.safeParse(p).success ? null : 'params must be {ids: sha256 hex[] (at most 200)}'),
          run: async (p, ctx) => {
            const rows = (await this.db.records.bulkGet(wantSchema.parse(p).ids)).filter(
              (r): r is StoredRecordRow => !!r && r.network === this.config.networkId,
            );
            for (let k = 0; k < rows.length; k += 40)
              await ctx.emit(rows.slice(k, k + 40).map((r) => r.record) as unknown as Json);
            return rows.length;
          },
        },
      },
      onRefused: (peer) => this.onRefused(peer),
    });
    await this.node.handle(SYNC_PROTOCOL, (stream, c) => server.handle(stream, c.remotePeer.toString()), {
      maxInboundStreams: 8,
    });
  }

  /** Call one sync method on a peer; the caller passes the RPC exchange (signed, over a direct connection). */
  rpc:
    | ((peer: string, protocol: string, method: string, params: Json, onChunk: (c: Json) => void) => Promise<Json>)
    | null = null;

  /** The peers to sync with: tabs this one has a direct connection to (set by the runtime). */
  directPeers: () => string[] = () => [];

  private async syncWithSomeone() {
    const peers = this.directPeers();
    if (peers.length === 0) return;
    await this.syncWith(peers[Math.floor(Math.random() * peers.length)]!);
  }

  private readonly syncing = new Set<string>();

  /** Compare bucket digests with a peer, then fetch the records we lack. */
  async syncWith(peer: string): Promise<number> {
    if (!this.rpc || this.syncing.has(peer)) return 0;
    this.syncing.add(peer);
    try {
      const call = (method: string, params: Json, onChunk: (c: Json) => void = () => {}) =>
        this.rpc!(peer, SYNC_PROTOCOL, method, params, onChunk);
      const theirs = z
        .object({ buckets: z.record(z.string().regex(/^\d+$/), z.string()) })
        .parse(await call('sync.digests', null)).buckets;
      const ours = LedgerNode.digests(await this.localRows());
      const differing = Object.keys(theirs)
        .filter((b) => theirs[b] !== ours[b])
        .map(Number)
        .slice(0, 200);
      if (differing.length === 0) return 0;
      const theirIds: string[] = [];
      await call('sync.ids', { buckets: differing }, (c) => {
        const ids = z
          .array(z.string().regex(/^[0-9a-f]{64}$/))
          .max(500)
          .safeParse(c);
        if (ids.success) theirIds.push(...ids.data);
      });
      const held = new Set((await this.db.records.bulkGet(theirIds)).filter(Boolean).map((r) => r!.id));
      const missing = theirIds.filter((id) => !held.has(id));
      let added = 0;
      for (let k = 0; k < missing.length; k += 200) {
        const batch: unknown[] = [];
        await call('sync.records', { ids: missing.slice(k, k + 200) }, (c) => {
          if (Array.isArray(c)) batch.push(...c.slice(0, 40));
        });
        added += await this.acceptMany(batch, `sync:${peer}`, false);
      }
      this.update({ syncs: this.view.syncs + 1 });
      return added;
    } catch (err) {
      console.warn(`sync with ${peer} failed: ${(err as Error).message}`);
      return 0;
    } finally {
      this.syncing.delete(peer);
    }
  }
}
