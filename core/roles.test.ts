/**
 * Roles: the settings a page may change, and the rule that a node keeps its role once one has started. The node
 * is never started: its platform is a stand-in whose every use fails the test, and its services are set by hand.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import { beforeEach, describe, expect, it } from 'vitest';
import { NodeError } from '../shared/errors.ts';
import type { Generation, InferenceEngine, Loaded } from '../shared/inference/engine.ts';
import type { NodeConfig } from './config.ts';
import type { LedgerServices } from './ledger.ts';
import { WebtensorNode, type NodeServices } from './node.ts';
import type { Platform } from './platform.ts';
import { Roles } from './roles.ts';
import { Miner } from './services/miner.ts';
import type { Validator } from './services/validator.ts';
import { FakeRpcRouter, testNetwork } from './testing/fakes.ts';

const config: NodeConfig = {
  relay: { healthUrl: 'http://relay.test/healthz' },
  role: 'miner',
  model: null,
  device: 'auto',
  network: null,
  fault: null,
  hub: 'https://hub.test/',
};

/** A platform any use of which throws: these tests must not start the node. */
const untouchable = new Proxy({} as Platform, {
  get: (_target, name) => {
    throw new Error(`the test used platform.${String(name)}`);
  },
});

const engine: InferenceEngine = {
  load: async (modelId): Promise<Loaded> => ({ modelId, ms: 0, device: 'wasm', reason: 'test' }),
  countTokens: async (prompt) => ({ tokens: prompt.length, context: null }),
  generate: async (): Promise<Generation> => ({
    text: '',
    tokenIds: [],
    steps: [],
    promptTokens: 0,
    ms: 0,
    finish: 'eos',
  }),
  score: async () => [],
  cancel: async () => {},
};

let node: WebtensorNode;
let roles: Roles;
let miner: Miner;

beforeEach(async () => {
  node = new WebtensorNode(config, untouchable);
  roles = new Roles(node);
  const key = await generateKeyPair('Ed25519');
  miner = new Miner(
    { engine, rpc: new FakeRpcRouter(key, testNetwork().clock), key, availableModels: async () => [] },
    { fault: null, hub: config.hub },
  );
  node.services.set({ miner, ledger: null } as unknown as NodeServices);
});

describe('Roles', () => {
  it('starts from the node’s configured role, model and device', () => {
    expect(roles.settings.get()).toEqual({ role: 'miner', model: null, device: 'auto' });
  });

  it('lets a page change the role, model and device before anything started', () => {
    roles.setRole('validator');
    roles.setModel('karpathy/stories260K');
    roles.setDevice('wasm');
    expect(roles.settings.get()).toEqual({ role: 'validator', model: 'karpathy/stories260K', device: 'wasm' });
  });

  it('refuses another role with NodeError("role-taken") once the miner began loading a model', async () => {
    await miner.serveModel('webtensor/tiny-llama', 'auto');
    const change = () => roles.setRole('client');
    expect(change).toThrow(NodeError);
    expect(change).toThrow(expect.objectContaining({ code: 'role-taken' }));
    expect(change).toThrow('This node already works as a miner; start another node to be a client.');
    expect(roles.settings.get().role).toBe('miner');
  });

  it('refuses another role once a validator runs', () => {
    roles.setRole('validator');
    roles.validator.set({} as Validator);
    expect(() => roles.setRole('miner')).toThrow(expect.objectContaining({ code: 'role-taken' }));
    expect(roles.settings.get().role).toBe('validator');
  });

  it('accepts choosing the role it already has, even after it started', async () => {
    await miner.serveModel('webtensor/tiny-llama', 'auto');
    expect(() => roles.setRole('miner')).not.toThrow();
  });

  it('goes on with its role when a registration attempt fails (it is tried again by itself)', async () => {
    const { network } = testNetwork();
    let asked = 0;
    let sharesTaken = false;
    const ledger = {
      network,
      registration: {
        ensureRegistered: async () => {
          asked++;
          throw new NodeError('no-network', 'no recent checkpoint yet');
        },
      },
    } as unknown as LedgerServices;
    const services = {
      miner,
      ledger,
      jobs: { miner: { start: () => (sharesTaken = true) } },
    } as unknown as NodeServices;
    node.services.set(services);
    node.start = async () => services;
    await roles.startRole();
    expect(asked).toBe(1);
    expect(miner.state.get().phase).toBe('ready');
    expect(sharesTaken).toBe(true);
  });

  it('works on no subnet without a network, else on the subnet of the chosen model, else the first', () => {
    expect(roles.subnet()).toBeNull();
    const { network } = testNetwork();
    const second = { ...network.subnets[0]!, netuid: 2, model: 'karpathy/stories260K' };
    const ledger = { network: { ...network, subnets: [network.subnets[0]!, second] } } as LedgerServices;
    node.services.set({ miner, ledger } as unknown as NodeServices);
    expect(roles.subnet()?.netuid).toBe(1);
    roles.setModel('karpathy/stories260K');
    expect(roles.subnet()?.netuid).toBe(2);
  });
});
