/** Where a node gets the network's config: the `network` setting's URL, else `/network` beside the relay's /healthz. */
import { NetworkConfigError, parseNetworkConfig, type NetworkConfig } from '../shared/ledger/config.ts';
import { NodeError } from '../shared/errors.ts';
import { subnetModelProblem } from '../shared/inference/catalogue.ts';
import type { NodeConfig } from './config.ts';

export function networkConfigUrl(config: Pick<NodeConfig, 'network' | 'relay'>): string | null {
  if (config.network) return config.network;
  if ('healthUrl' in config.relay) return config.relay.healthUrl.replace(/\/healthz$/, '/network');
  return null;
}

/** The network config, or null when there is none to be had (a relay without /network: no ledger). */
export async function loadNetworkConfig(config: Pick<NodeConfig, 'network' | 'relay'>): Promise<NetworkConfig | null> {
  const url = networkConfigUrl(config);
  if (!url) return null;
  let data: unknown;
  try {
    data = await (await fetch(url)).json();
  } catch {
    if (config.network) throw new NodeError('network-config', `No network config could be read from ${url}.`);
    return null;
  }
  let network: NetworkConfig;
  try {
    network = parseNetworkConfig(data);
  } catch (err) {
    if (err instanceof NetworkConfigError)
      throw new NodeError('network-config', `${url}: ${err.message}`, { cause: err });
    throw err;
  }
  for (const subnet of network.subnets) {
    const problem = subnetModelProblem(subnet.model, subnet.task);
    if (problem) throw new NodeError('network-config', `${url}: subnet ${subnet.netuid}: ${problem}.`);
  }
  return network;
}
