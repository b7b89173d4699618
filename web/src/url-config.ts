/**
 * Node settings from the URL (`relay=`, `autostart=`, `ice=`, `role=`, `model=`, `device=`, `network=`, `fault=`),
 * validated; a bad value is an error that names the parameter. Without `relay=`, the node asks the relay's HTTP
 * port on this page's host where to dial; without `network=`, it reads the network config beside it.
 */
import { multiaddr } from '@multiformats/multiaddr';
import { findModel } from '../../shared/inference/catalogue.ts';
import { NodeError } from '../../shared/errors.ts';
import { FAULTS as faults, type Fault, type NodeConfig } from '../../core/config.ts';

/** What a tab's URL says: the node's settings, plus tab-only ones (autostart, ICE servers). */
export interface TabConfig extends NodeConfig {
  autostart: boolean;
  iceServers: RTCIceServer[];
}

/** A URL parameter was refused; the message names it. */
export class ConfigError extends NodeError {
  override name = 'ConfigError';
  constructor(message: string) {
    super('bad-config', message);
  }
}

export function readNodeConfig(search: string, location: { hostname: string; protocol: string }): TabConfig {
  const params = new URLSearchParams(search);
  const relayParam = params.get('relay');
  let relay: TabConfig['relay'];
  if (relayParam === null || relayParam === '') {
    relay = { healthUrl: `${location.protocol === 'https:' ? 'https' : 'http'}://${location.hostname}:9091/healthz` };
  } else if (/^https?:\/\//.test(relayParam)) {
    relay = { healthUrl: relayParam };
  } else {
    try {
      const ma = multiaddr(relayParam);
      if (!ma.toString().includes('/p2p/')) throw new Error('it has no /p2p/<peer id>');
      relay = { multiaddr: ma };
    } catch (err) {
      throw new ConfigError(
        `The relay= parameter is not a relay address (${(err as Error).message}). Use a multiaddr like /ip4/127.0.0.1/tcp/9090/ws/p2p/12D3… or the relay's http://…/healthz URL.`,
      );
    }
  }
  const auto = params.get('autostart');
  if (auto !== null && !['1', '0', 'true', 'false', ''].includes(auto))
    throw new ConfigError(`The autostart= parameter must be 1 or 0, not "${auto}".`);
  let iceServers: RTCIceServer[] = [];
  const ice = params.get('ice');
  if (ice) {
    try {
      const parsed: unknown = JSON.parse(ice);
      if (!Array.isArray(parsed) || !parsed.every((s) => typeof s === 'object' && s && 'urls' in s))
        throw new Error('expected a JSON list of {urls}');
      iceServers = parsed as RTCIceServer[];
    } catch (err) {
      throw new ConfigError(
        `The ice= parameter must be a JSON list of ICE servers like [{"urls":"stun:stun.example.org"}] (${(err as Error).message}).`,
      );
    }
  }
  const model = params.get('model') || null;
  if (model !== null && findModel(model)?.task !== 'text-generation')
    throw new ConfigError(
      `The model= parameter names "${model.slice(0, 80)}", which is not a text-generation model in the catalogue.`,
    );
  const device = params.get('device') || 'auto';
  if (device !== 'auto' && device !== 'wasm' && device !== 'webgpu')
    throw new ConfigError(`The device= parameter must be auto, wasm or webgpu, not "${device.slice(0, 40)}".`);
  const role = params.get('role') || 'miner';
  if (role !== 'miner' && role !== 'validator' && role !== 'client')
    throw new ConfigError(`The role= parameter must be miner, validator or client, not "${role.slice(0, 40)}".`);
  const network = params.get('network') || null;
  if (network !== null && !/^https?:\/\//.test(network))
    throw new ConfigError(
      `The network= parameter must be the http(s) URL of a network config, not "${network.slice(0, 80)}".`,
    );
  const fault = params.get('fault') || null;
  if (fault !== null && !(faults as readonly string[]).includes(fault))
    throw new ConfigError(`The fault= parameter must be one of ${faults.join(', ')}, not "${fault.slice(0, 40)}".`);
  const hub = params.get('hub') || 'https://huggingface.co/';
  if (!/^https?:\/\/[^\s]+$/.test(hub))
    throw new ConfigError(
      `The hub= parameter must be the http(s) URL of a Hugging Face hub or mirror, not "${hub.slice(0, 80)}".`,
    );
  return {
    hub,
    relay,
    autostart: auto === '1' || auto === 'true',
    iceServers,
    model,
    device,
    role,
    network,
    fault: fault as Fault | null,
  };
}
