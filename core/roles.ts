/**
 * What a person asks a node to be: a miner (serve a model and register), a validator (load the subnet's model,
 * register, run the validator loop) or a client (only ask). The role, model and device are settings a page may
 * change until a role has started; then the node keeps its role (open another tab or process for another).
 */
import type { SubnetConfig } from '../shared/ledger/config.ts';
import type { Loaded } from '../shared/inference/engine.ts';
import { NodeError } from '../shared/errors.ts';
import type { NodeConfig, Role } from './config.ts';
import type { NodeServices, WebtensorNode } from './node.ts';
import { JobAuditor } from './services/job-auditor.ts';
import { jobLedgerOf } from './services/jobs.ts';
import { Validator } from './services/validator.ts';
import { PROTOCOLS } from '../shared/names.ts';
import type { Json } from '../shared/p2p/rpc.ts';
import { Store } from './store.ts';

export interface RoleSettings {
  role: Role;
  /** The model to mine with; null: the best one this machine has. */
  model: string | null;
  device: NodeConfig['device'];
}

export class Roles {
  readonly settings: Store<RoleSettings>;
  readonly validator = new Store<Validator | null>(null);
  /** A validator's audits of batch-job results (docs/jobs.md), made with the validator. */
  readonly jobAuditor = new Store<JobAuditor | null>(null);

  constructor(private readonly node: WebtensorNode) {
    const { role, model, device } = node.config;
    this.settings = new Store<RoleSettings>({ role, model, device });
  }

  /** The subnet this node works on: the one serving the chosen model, else the network's first. */
  subnet(): SubnetConfig | null {
    const subnets = this.node.services.get()?.ledger?.network.subnets ?? [];
    return subnets.find((s) => s.model === this.settings.get().model) ?? subnets[0] ?? null;
  }

  private started(): boolean {
    return (this.node.services.get()?.miner?.state.get().phase ?? 'idle') !== 'idle' || this.validator.get() !== null;
  }

  /** Choose what Start does; only before a role has started. */
  setRole(role: Role): void {
    const current = this.settings.get().role;
    if (current === role) return;
    if (this.started())
      throw new NodeError('role-taken', `This node already works as a ${current}; start another node to be a ${role}.`);
    this.settings.update({ role });
  }

  setModel(model: string | null): void {
    this.settings.update({ model });
  }

  setDevice(device: NodeConfig['device']): void {
    this.settings.update({ device });
  }

  /** What Start does: start the node and, for a miner, serve its model and register; for a validator, validate. */
  async startRole(): Promise<void> {
    const services = await this.node.start();
    const { role } = this.settings.get();
    if (role === 'miner') {
      if (services.miner?.state.get().phase !== 'ready')
        await this.serveModel(this.settings.get().model ?? this.subnet()?.model);
      await this.register(services, 'miner');
      // A miner also takes batch-job shards its balance can bond (docs/jobs.md).
      services.jobs?.miner?.start();
    } else if (role === 'validator') {
      await this.startValidator();
    }
  }

  /** Load a model (the given one, else the chosen one, else this machine's best) and serve it to peers. */
  async serveModel(modelId?: string): Promise<Loaded> {
    const services = await this.node.start();
    if (!services.miner) throw new NodeError('no-inference', 'This node cannot run models on this platform.');
    const { model, device } = this.settings.get();
    return services.miner.serveModel(modelId ?? model, device);
  }

  /** Load the subnet's model on WASM (answers are checked against it), register as a validator, run the loop. */
  async startValidator(): Promise<Validator> {
    const services = await this.node.start();
    const { ledger, miner, client } = services;
    const subnet = this.subnet();
    if (!ledger || !subnet)
      throw new NodeError('no-network', 'Validating needs a network: this relay serves no network config.');
    if (!miner) throw new NodeError('no-inference', 'Validating needs an inference engine, which this platform lacks.');
    let validator = this.validator.get();
    if (!validator) {
      // Validation always runs on the pinned WASM path.
      await this.node.platform.inference!.load(subnet.model, undefined, 'wasm', this.node.config.hub);
      validator = new Validator({
        consensus: ledger.consensus,
        book: ledger.book,
        subnet,
        fault: this.node.config.fault === 'copy-weights' ? 'copy-weights' : null,
        infer: (peer, params, opts) => client.infer(peer, params, opts),
        // Challenges go through a connected peer drawn at random, so the miner sees a client's key (forward.ts).
        forward: (forwarder, peer, params, opts) => services.forwarder.through(forwarder, peer, params, opts),
        connectedPeers: () => services.peers.direct(),
        scoreLocally: (prompt, tokenIds) => miner.scoreHere(prompt, tokenIds),
        countLocally: (prompt) => miner.countHere(prompt),
      });
      const auditing = validator;
      // Signed answers handed in to check (the gateway's audit): see Validator.audit.
      await services.rpc.handle(
        PROTOCOLS.audit,
        { 'validator.audit': { run: (params, ctx) => auditing.audit(params, ctx.peer) as Promise<Json> } },
        { maxInboundStreams: 4 },
      );
      this.validator.set(validator);
      if (services.blobs)
        this.jobAuditor.set(
          new JobAuditor({
            ...jobLedgerOf(ledger),
            blobs: services.blobs,
            subnet,
            scoreLocally: (prompt, tokenIds) => miner.scoreHere(prompt, tokenIds),
          }),
        );
    }
    await this.register(services, 'validator');
    validator.start();
    this.jobAuditor.get()?.start();
    return validator;
  }

  /**
   * Ask to be registered. An attempt that fails is tried again by itself after a pause (Registration's
   * `ensureRegistered`; its state says why, and that it will), so the role goes on meanwhile: a miner serves (it
   * claims batch shards once it holds a UID), a validator's loop waits for its UID. Stopping here instead left a
   * validator that registered on the second try never validating, and ended a headless node on its first failure.
   */
  private async register(services: NodeServices, role: 'miner' | 'validator'): Promise<void> {
    const subnet = this.subnet();
    if (services.ledger && subnet)
      await services.ledger.registration.ensureRegistered(subnet.netuid, role).catch(() => {});
  }
}
