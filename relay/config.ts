/**
 * Relay configuration from flags (--host, --port, --http-port, --key-file, --tls-cert, --tls-key,
 * --max-reservations, --max-reservations-per-ip, --max-connections-per-ip, --connection-rate-per-ip,
 * --peer-list-rate, --network, --genesis-file, --peer-sample) or environment (RELAY_HOST, RELAY_PORT,
 * RELAY_MAX_RESERVATIONS_PER_IP, ...). Flags win. Bad values are refused with a message naming the flag.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { subnetModelProblem } from '../shared/inference/catalogue.ts';
import { NetworkConfigError, parseNetworkConfig, type NetworkConfig } from '../shared/ledger/config.ts';
import { productionProfile, testProfile } from '../shared/ledger/profiles.ts';
export interface RelayConfig {
  host: string;
  port: number;
  httpPort: number;
  keyFile: string;
  tlsCert: string | null;
  tlsKey: string | null;
  maxReservations: number;
  /** Reservations held at once by peers connected from one IP (IPv6: one /64); see limits.ts. */
  maxReservationsPerIp: number;
  /** Inbound connections open at once from one IP, handshakes included. */
  maxConnectionsPerIp: number;
  /** New inbound connections one IP may open per minute. */
  connectionRatePerIp: number;
  /** Peer-list (`/webtensor/peers/1`) requests one peer may make per minute. */
  peerListRate: number;
  /** The network config this relay serves at /network (a profile name or a JSON file). */
  network: string;
  /** For `--network test`: where the test network's config (its genesis) is kept across restarts, or null. */
  genesisFile: string | null;
  /** How many peers (a random sample) each answer of the peer list names. */
  peerSample: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const options = {
  host: { env: 'RELAY_HOST', fallback: '127.0.0.1' },
  port: { env: 'RELAY_PORT', fallback: '9090' },
  'http-port': { env: 'RELAY_HTTP_PORT', fallback: '9091' },
  'key-file': { env: 'RELAY_KEY_FILE', fallback: 'relay/.data/relay-key.pb' },
  'tls-cert': { env: 'RELAY_TLS_CERT', fallback: '' },
  'tls-key': { env: 'RELAY_TLS_KEY', fallback: '' },
  'max-reservations': { env: 'RELAY_MAX_RESERVATIONS', fallback: '1024' },
  'max-reservations-per-ip': { env: 'RELAY_MAX_RESERVATIONS_PER_IP', fallback: '8' },
  'max-connections-per-ip': { env: 'RELAY_MAX_CONNECTIONS_PER_IP', fallback: '16' },
  'connection-rate-per-ip': { env: 'RELAY_CONNECTION_RATE_PER_IP', fallback: '60' },
  'peer-list-rate': { env: 'RELAY_PEER_LIST_RATE', fallback: '60' },
  network: { env: 'RELAY_NETWORK', fallback: 'production' },
  'genesis-file': { env: 'RELAY_GENESIS_FILE', fallback: '' },
  'peer-sample': { env: 'RELAY_PEER_SAMPLE', fallback: '24' },
} as const;
type Option = keyof typeof options;

function integer(name: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max)
    throw new ConfigError(`--${name} must be an integer from ${min} to ${max}, got "${text}"`);
  return Number(text);
}

export function parseRelayConfig(argv: string[], env: NodeJS.ProcessEnv): RelayConfig {
  const given = new Map<Option, string>();
  for (let k = 0; k < argv.length; k++) {
    const arg = argv[k]!;
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument "${arg}"; options look like --port 9090`);
    const [flag, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (!(flag in options))
      throw new ConfigError(
        `unknown option --${flag}; known: ${Object.keys(options)
          .map((o) => `--${o}`)
          .join(', ')}`,
      );
    const value = inline ?? argv[++k];
    if (value === undefined) throw new ConfigError(`--${flag} needs a value`);
    given.set(flag as Option, value);
  }
  const get = (o: Option) => given.get(o) ?? env[options[o].env] ?? options[o].fallback;
  const host = get('host');
  if (!/^[\w.:-]+$/.test(host)) throw new ConfigError(`--host must be a host name or IP address, got "${host}"`);
  const port = integer('port', get('port'), 0, 65535);
  const httpPort = integer('http-port', get('http-port'), 0, 65535);
  if (port !== 0 && port === httpPort) throw new ConfigError(`--port and --http-port must differ (both ${port})`);
  const tlsCert = get('tls-cert') || null;
  const tlsKey = get('tls-key') || null;
  if ((tlsCert === null) !== (tlsKey === null))
    throw new ConfigError('--tls-cert and --tls-key must be given together');
  const maxReservationsPerIp = integer('max-reservations-per-ip', get('max-reservations-per-ip'), 1, 1_000_000);
  const maxConnectionsPerIp = integer('max-connections-per-ip', get('max-connections-per-ip'), 1, 1_000_000);
  // Each reservation needs a connection: a lower connection limit would silently be the reservation limit.
  if (maxConnectionsPerIp < maxReservationsPerIp)
    throw new ConfigError(
      `--max-connections-per-ip (${maxConnectionsPerIp}) must be at least --max-reservations-per-ip (${maxReservationsPerIp})`,
    );
  return {
    host,
    port,
    httpPort,
    keyFile: get('key-file'),
    tlsCert,
    tlsKey,
    maxReservations: integer('max-reservations', get('max-reservations'), 1, 100_000),
    maxReservationsPerIp,
    maxConnectionsPerIp,
    connectionRatePerIp: integer('connection-rate-per-ip', get('connection-rate-per-ip'), 1, 1_000_000),
    peerListRate: integer('peer-list-rate', get('peer-list-rate'), 1, 1_000_000),
    network: get('network'),
    genesisFile: get('genesis-file') || null,
    peerSample: integer('peer-sample', get('peer-sample'), 1, 1000),
  };
}

/**
 * The network config named by --network: `production`, `test` (genesis = now, to the second, so a fresh test
 * network starts at block 0), or a JSON file. A bad file is refused naming the field. With a `genesisFile`, a
 * test network's config is written there when first made and read back on later starts: a restarted relay
 * keeps its network's genesis (else every block, epoch and signature of the history would be off by its downtime).
 */
export function loadNetworkConfig(network: string, nowMs: number, genesisFile: string | null = null): NetworkConfig {
  if (network === 'production') return productionProfile();
  if (network === 'test' && genesisFile && existsSync(genesisFile)) {
    const kept = loadNetworkConfig(genesisFile, nowMs);
    if (kept.profile !== 'test')
      throw new ConfigError(`--genesis-file ${genesisFile} holds a ${kept.profile} network, not a test network`);
    return kept;
  }
  if (network === 'test') {
    const fresh = testProfile(Math.floor(nowMs / 1000) * 1000);
    if (genesisFile) {
      mkdirSync(dirname(genesisFile), { recursive: true });
      const tmp = `${genesisFile}.${process.pid}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(fresh, null, 2)}\n`);
      renameSync(tmp, genesisFile);
    }
    return fresh;
  }
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(network, 'utf8'));
  } catch (err) {
    throw new ConfigError(
      `--network must be production, test or a readable JSON file; "${network}": ${(err as Error).message}`,
    );
  }
  let parsed: NetworkConfig;
  try {
    parsed = parseNetworkConfig(data);
  } catch (err) {
    if (err instanceof NetworkConfigError) throw new ConfigError(`--network ${network}: ${err.message}`);
    throw err;
  }
  // Nodes refuse a subnet model that is not pinned (a hub branch can change under its name): so does the relay.
  for (const subnet of parsed.subnets) {
    const problem = subnetModelProblem(subnet.model, subnet.task);
    if (problem) throw new ConfigError(`--network ${network}: subnet ${subnet.netuid}: ${problem}`);
  }
  return parsed;
}
