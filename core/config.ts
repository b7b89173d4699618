/**
 * A node's settings, wherever they come from (a tab's URL parameters, a process's flags). Parsing them is the
 * host's job (`web/src/url-config.ts`); the core only reads this shape.
 */
import type { Multiaddr } from '@multiformats/multiaddr';
import type { DevicePreference } from '../shared/inference/engine.ts';

export const ROLES = ['miner', 'validator', 'client'] as const;
export type Role = (typeof ROLES)[number];

/**
 * Test networks only: ways to make a node misbehave so tests can show that scoring catches it. Miners:
 * `wrong-output` (token ids that do not follow from the candidates signed), `other-model` (another model served
 * under the subnet's name and hash), `random` (made-up answers, consistent with made-up candidates), `truncate`
 * (half the tokens, sold as finished), `cheat-users` (honest with validators, `random` with everyone else), `slow`,
 * `drop`. Validators: `copy-weights`.
 */
export const FAULTS = [
  'wrong-output',
  'other-model',
  'random',
  'truncate',
  'cheat-users',
  'slow',
  'drop',
  'copy-weights',
] as const;
export type Fault = (typeof FAULTS)[number];

export interface NodeConfig {
  /** A relay multiaddr to dial, or the URL of a relay's /healthz to ask for one. */
  relay: { multiaddr: Multiaddr } | { healthUrl: string };
  /** More relays to hold reservations on, so losing one loses nothing (the network config comes from `relay`). */
  moreRelays?: NodeConfig['relay'][];
  /** What Start does: mine (serve a model), validate miners, or only take part as a client. */
  role: Role;
  /** The model to mine with; null: the best one this machine has (stories260K, else the generated tiny Llama). */
  model: string | null;
  device: DevicePreference;
  /** Where the network config comes from: a URL, or null for the relay's /network beside its /healthz. */
  network: string | null;
  fault: Fault | null;
  /** Where hub models come from: https://huggingface.co/ unless a mirror is given. */
  hub: string;
  /** An archive keeps every record from genesis: it never joins from a checkpoint (and serves all of history). */
  archive?: boolean;
}

/** A node that only takes part as a client (no model, no registration): tests, tools, the adversary. */
export function clientConfig(relay: NodeConfig['relay']): NodeConfig {
  return {
    relay,
    role: 'client',
    model: null,
    device: 'auto',
    network: null,
    fault: null,
    hub: 'https://huggingface.co/',
  };
}
