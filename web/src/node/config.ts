/**
 * Node settings from the URL (`relay=`, `autostart=`, `ice=`), validated; a bad value is an error that names the
 * parameter. Without `relay=`, the node asks the relay's HTTP port on this page's host where to dial.
 */
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';

export interface NodeConfig {
  /** A relay multiaddr to dial, or the URL of a relay's /healthz to ask for one. */
  relay: { multiaddr: Multiaddr } | { healthUrl: string };
  autostart: boolean;
  iceServers: RTCIceServer[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function readNodeConfig(search: string, location: { hostname: string; protocol: string }): NodeConfig {
  const params = new URLSearchParams(search);
  const relayParam = params.get('relay');
  let relay: NodeConfig['relay'];
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
  return { relay, autostart: auto === '1' || auto === 'true', iceServers };
}
