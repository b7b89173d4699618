/**
 * `npm run node -- --role client|validator|miner [options]`: a webtensor node without a tab. It runs the same
 * node core a tab does on the Node platform, logs one JSON line per event on stdout, optionally serves its
 * status port (core/nodejs/status-server.ts), and stops cleanly on SIGINT or SIGTERM.
 *
 * Exit codes: 0 after a clean stop (or --help), 1 when the node could not start or run, 2 for a bad argument.
 */
import '../../shared/polyfills.ts';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { multiaddr } from '@multiformats/multiaddr';
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import { NodeError, WebtensorError } from '../../shared/errors.ts';
import { findModel } from '../../shared/inference/catalogue.ts';
import { FAULTS, ROLES, type NodeConfig, type Role } from '../config.ts';
import { WebtensorNode, type NodeServices } from '../node.ts';
import { Roles } from '../roles.ts';
import type { ReadableStore } from '../store.ts';
import { NodeInferenceEngine } from './inference.ts';
import { createNodePlatform } from './platform.ts';
import { showProgress } from './progress.ts';
import { readStatus, startStatusServer, type StatusServer } from './status-server.ts';
import { parseWalletArgs, runWalletCall, WALLET_USAGE } from './wallet-cli.ts';
import { walletToken } from './wallet-http.ts';

// ---------------------------------------------------------------------------------------------------- arguments

/** The relay `npm start` runs, asked the way a tab asks it. */
export const DEFAULT_RELAY = 'http://127.0.0.1:9091/healthz';
export const DEFAULT_DATA_DIR = './.webtensor-node';
const PROFILES = ['test', 'production'] as const;

export const USAGE = `Usage: npm run node -- --role client|validator|miner [options]

  --role ROLE           what the node does: client (ask only), validator or miner (required)
  --relay URL|ADDR      the relay's http URL (its /healthz is asked where to dial) or its multiaddr with /p2p/<id>
                        (default ${DEFAULT_RELAY}); repeat it to hold reservations on several relays
  --model ID            the catalogue model to mine with (default: the subnet's)
  --data DIR            where the node keeps its key and ledger (default ${DEFAULT_DATA_DIR})
  --archive             keep all of history from genesis (never join from a checkpoint) and serve it
  --network NAME|URL    test or production: refuse to join any other network; or the URL of a network config
  --status-port N       serve /healthz, /status and /metrics on this port (0: any free one; default: none)
  --status-host HOST    the status port's interface (default 127.0.0.1)
  --listen HOST:PORT    its own listener for peers (default 127.0.0.1:0); none: WebRTC through the relay only
  --faucet-stake RAO    test networks: draw RAO from the faucet and stake it on this node (validators need stake)
  --faucet RAO          test networks: draw RAO from the faucet into this node's free balance (a miner's batch-job
                        bonds come from it)
  --fault KIND          test networks only: misbehave on purpose (${FAULTS.join(', ')}), to test what catches it
  --help                print this and exit

  npm run node -- wallet …  the running node's wallet through its status port (wallet --help)
`;

/** A bad argument; the message is one sentence naming it. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface CliOptions {
  config: NodeConfig;
  /** The network profile --network insists on, if it named one. */
  profile: (typeof PROFILES)[number] | null;
  dataDir: string;
  status: { host: string; port: number } | null;
  /** Where its own libp2p listener is (peers dial it there), or null: none, WebRTC through the relay only. */
  listen: { host: string; port: number } | null;
  /** Test networks: rao to draw from the faucet and stake on this node at start (a validator needs stake). */
  faucetStake: bigint | null;
  /** Test networks: rao to draw from the faucet into the free balance at start (a miner bonds batch shards with it). */
  faucet: bigint | null;
}

const clip = (value: unknown) => String(value).slice(0, 80);

/** A relay's http(s) URL (with or without /healthz) or a multiaddr naming its peer id. */
export function relayOf(text: string): NodeConfig['relay'] {
  if (/^https?:\/\//.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new UsageError(`--relay "${clip(text)}" is not a valid URL.`);
    }
    const path = url.pathname.replace(/\/+$/, '');
    return { healthUrl: `${url.origin}${path.endsWith('/healthz') ? path : `${path}/healthz`}` };
  }
  let address;
  try {
    address = multiaddr(text);
  } catch (err) {
    throw new UsageError(
      `--relay must be the relay's http URL or a multiaddr, and "${clip(text)}" is neither (${(err as Error).message}).`,
    );
  }
  if (!address.getComponents().some((c) => c.name === 'p2p'))
    throw new UsageError(
      `--relay ${clip(text)} has no /p2p/<peer id>; use the full multiaddr from the relay's /healthz.`,
    );
  return { multiaddr: address };
}

/** Turn a thrown UsageError into a zod issue, so every check reports the same way. */
const via = <T>(parse: (text: string) => T) =>
  z.string().transform((text, ctx) => {
    try {
      return parse(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const argsSchema = z.object({
  role: z.enum(ROLES, {
    error: (issue) =>
      issue.input === undefined
        ? '--role is required: miner, validator or client.'
        : `--role must be miner, validator or client, not "${clip(issue.input)}".`,
  }),
  relay: z.array(via(relayOf)).default(() => [relayOf(DEFAULT_RELAY)]),
  model: z
    .string()
    .refine((id) => findModel(id)?.task === 'text-generation', {
      error: (issue) => `--model "${clip(issue.input)}" is not a text-generation model in the catalogue.`,
    })
    .optional(),
  data: z.string().trim().min(1, '--data must name a directory.').default(DEFAULT_DATA_DIR),
  network: via((text) => {
    if ((PROFILES as readonly string[]).includes(text)) return { profile: text as CliOptions['profile'], url: null };
    if (/^https?:\/\/\S+$/.test(text)) return { profile: null, url: text };
    throw new UsageError(
      `--network must be test, production or the http(s) URL of a network config, not "${clip(text)}".`,
    );
  }).optional(),
  'status-port': z
    .string()
    .regex(/^\d{1,5}$/, '--status-port must be a port number from 0 to 65535.')
    .transform(Number)
    .refine((port) => port <= 65535, '--status-port must be a port number from 0 to 65535.')
    .optional(),
  'status-host': z
    .string()
    .regex(/^[\w.:-]+$/, '--status-host must be a host name or IP address.')
    .default('127.0.0.1'),
  listen: z
    .string()
    .regex(
      /^(none|[\w.-]+:\d{1,5})$/,
      '--listen must be HOST:PORT (its own listener, port 0 for any) or none (WebRTC through the relay only).',
    )
    .transform((text) => {
      if (text === 'none') return null;
      const [host, port] = text.split(':') as [string, string];
      return { host, port: Number(port) };
    })
    .refine((l) => l === null || l.port <= 65535, '--listen port must be from 0 to 65535.')
    .default({ host: '127.0.0.1', port: 0 }),
  'faucet-stake': z
    .string()
    .regex(/^[1-9]\d{0,24}$/, '--faucet-stake must be a whole number of rao, like 1000000000000 (1 τ = 1e9 rao).')
    .transform(BigInt)
    .optional(),
  faucet: z
    .string()
    .regex(/^[1-9]\d{0,24}$/, '--faucet must be a whole number of rao, like 10000000000 (1 τ = 1e9 rao).')
    .transform(BigInt)
    .optional(),
  fault: z
    .enum(FAULTS, { error: (issue) => `--fault must be one of ${FAULTS.join(', ')}, not "${clip(issue.input)}".` })
    .optional(),
});

const FLAGS = [
  'role',
  'relay',
  'model',
  'data',
  'network',
  'status-port',
  'status-host',
  'listen',
  'faucet-stake',
  'faucet',
  'fault',
] as const;

/** Parse the command line; 'help' when --help was asked for. Throws UsageError with one sentence. */
export function parseCliArgs(argv: string[]): CliOptions | 'help' {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    const options = Object.fromEntries(FLAGS.map((f) => [f, { type: 'string' as const }]));
    ({ values } = parseArgs({
      args: argv,
      options: {
        ...options,
        // Several relays: the node holds a reservation on each and survives losing one.
        relay: { type: 'string', multiple: true },
        help: { type: 'boolean' },
        archive: { type: 'boolean' },
      },
      strict: true,
    }));
  } catch (err) {
    throw new UsageError(parseArgsSentence(err as Error & { code?: string }));
  }
  if (values.help) return 'help';
  const { archive, ...strings } = values;
  const parsed = argsSchema.safeParse(strings);
  if (!parsed.success) throw new UsageError(parsed.error.issues[0]!.message);
  const args = parsed.data;
  const role: Role = args.role;
  return {
    config: {
      relay: args.relay[0]!,
      moreRelays: args.relay.slice(1),
      role,
      model: args.model ?? null,
      device: 'auto',
      network: args.network?.url ?? null,
      // The node refuses a fault on any network but a test one.
      fault: args.fault ?? null,
      hub: 'https://huggingface.co/',
      archive: archive === true,
    },
    profile: args.network?.profile ?? null,
    dataDir: resolve(args.data),
    status: args['status-port'] === undefined ? null : { host: args['status-host'], port: args['status-port'] },
    listen: args.listen,
    faucetStake: args['faucet-stake'] ?? null,
    faucet: args.faucet ?? null,
  };
}

/** node:util's parse errors, as one sentence naming the argument. */
function parseArgsSentence(err: Error & { code?: string }): string {
  // Node names the argument in quotes: '--bogus', '--role <value>', 'extra'.
  const named = /'([^' ]*)/.exec(err.message)?.[1] ?? '';
  const known = FLAGS.map((f) => `--${f}`).join(', ');
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `Unknown option ${named}; the options are ${known}, --archive and --help.`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (named === '--help') return '--help takes no value.';
      // "--status-port -1": node:util will not take a value that looks like an option unless written with "=".
      return err.message.includes('ambiguous')
        ? `${named} needs a value; write ${named}=VALUE when the value starts with "-".`
        : `${named} needs a value.`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `Unexpected argument "${clip(named)}"; every setting is an option, like --role client.`;
    default:
      return err.message;
  }
}

// ---------------------------------------------------------------------------------------------------- logging

/** One JSON object per line on stdout, written synchronously so no line is lost when the process exits. */
export function createLogger(): Logger {
  return pino(
    {
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: 1, sync: true }),
  );
}

/** Call `onChange(now, before)` for the store's value now and after every change; returns the unsubscribe. */
function follow<T>(store: ReadableStore<T>, initial: T, onChange: (now: T, before: T) => void): () => void {
  let before = initial;
  const step = (now: T) => {
    const prev = before;
    before = now;
    onChange(now, prev);
  };
  step(store.get());
  return store.subscribe(step);
}

/** Log what a person running the node wants to know: the relay link, peers, the ledger, registration, work. */
function logEvents(services: NodeServices, node: WebtensorNode, roles: Roles, log: Logger): Array<() => void> {
  const stops: Array<() => void> = [];
  stops.push(
    follow(services.relay.state, { ...services.relay.state.get(), reserved: false, problem: null }, (now, before) => {
      if (now.reserved && !before.reserved) log.info({ relay: now.address }, 'relay reserved');
      if (!now.connected && before.connected) log.warn({ relay: now.address }, 'relay lost');
      if (now.problem && now.problem !== before.problem) log.warn({ problem: now.problem }, 'relay problem');
    }),
  );
  stops.push(
    follow(services.peers.peers, [], (now, before) => {
      const was = new Map(before.map((p) => [p.peerId, p.direct]));
      for (const p of now) {
        if (!was.has(p.peerId)) log.info({ peer: p.peerId, direct: p.direct }, 'peer connected');
        else if (p.direct && !was.get(p.peerId)) log.info({ peer: p.peerId }, 'peer direct');
      }
      const is = new Set(now.map((p) => p.peerId));
      for (const p of before) if (!is.has(p.peerId)) log.info({ peer: p.peerId }, 'peer disconnected');
    }),
  );
  const ledger = services.ledger;
  if (ledger) {
    // Epochs closed before this node started are history: log only the ones that close while it runs.
    let lastEpoch: Map<number, number> | null = null;
    let uid: number | null = null;
    stops.push(
      // The first replay may have finished before the services were published: follow gives it too.
      follow(ledger.consensus.snapshot, null, (snapshot) => {
        if (!snapshot) return;
        const first = lastEpoch === null;
        lastEpoch ??= new Map();
        for (const e of snapshot.epochs) {
          if (e.epoch <= (lastEpoch.get(e.netuid) ?? -1)) continue;
          lastEpoch.set(e.netuid, e.epoch);
          if (!first)
            log.info(
              { netuid: e.netuid, epoch: e.epoch, block: e.block, emission: e.amount, uids: e.uids.length },
              'epoch closed',
            );
        }
        const status = readStatus(node, roles);
        if (status.uid !== uid) {
          if (status.uid === null) log.warn({ netuid: status.netuid, uid }, 'deregistered');
          else log.info({ netuid: status.netuid, uid: status.uid }, 'registered');
          uid = status.uid;
        }
      }),
    );
    stops.push(
      follow(ledger.finality.state, ledger.finality.state.get(), (now, before) => {
        if (now.lastFinal > before.lastFinal) log.info({ epoch: now.lastFinal }, 'epoch final');
      }),
    );
    stops.push(ledger.consensus.error.subscribe((error) => error && log.warn({ error }, 'replay failed')));
    stops.push(
      follow(ledger.registration.state, null, (now, before) => {
        if (now?.phase === 'hashing' && before?.phase !== 'hashing')
          log.info({ netuid: now.netuid, expectedHashes: now.expected }, 'registering');
        if (now?.phase === 'error' && before?.phase !== 'error')
          log.error({ netuid: now.netuid, error: now.error }, 'registration failed');
      }),
    );
  }
  if (services.miner)
    stops.push(
      follow(services.miner.state, services.miner.state.get(), (now, before) => {
        if (now.phase === 'ready' && before.phase !== 'ready')
          log.info({ model: now.model, device: now.device }, 'serving model');
        if (now.lastError && now.lastError !== before.lastError) log.warn({ error: now.lastError }, 'miner error');
      }),
    );
  return stops;
}

// ---------------------------------------------------------------------------------------------------- running

const errorFields = (err: unknown) => ({
  code: err instanceof WebtensorError ? err.code : undefined,
  error: err instanceof Error ? err.message : String(err),
});

async function run(options: CliOptions, log: Logger): Promise<void> {
  const { config } = options;
  // The ledger on disk beside the key: a restarted node keeps its records (and replays them at once).
  const platform = createNodePlatform({
    dataDir: options.dataDir,
    durable: true,
    ...(options.listen ? { host: options.listen.host, port: options.listen.port } : { noListener: true }),
    ...(config.role === 'client' ? {} : { inference: new NodeInferenceEngine() }),
  });
  // Checked before anything connects: a miner or validator needs a model on this machine.
  const models = await platform.availableModels();
  const wanted = config.model ?? models[0];
  if (config.role !== 'client' && (!wanted || !models.includes(wanted))) {
    log.error(
      { role: config.role, code: 'no-model', model: wanted ?? null, available: models },
      `A ${config.role} needs a model on this machine, and ${wanted ?? 'none'} is not here (available: ${models.join(', ') || 'none'}); run \`npm install\` to generate webtensor/tiny-llama, or put ../shared/models beside the repository.`,
    );
    process.exit(1);
  }
  const node = new WebtensorNode(config, platform);
  const roles = new Roles(node);
  let status: StatusServer | null = null;
  const stops: Array<() => void> = [];

  // Signal handlers go in first, so a signal during start-up still stops cleanly.
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'node stopping');
    setTimeout(() => {
      log.error('stopping took over 5 s; exiting anyway');
      process.exit(1);
    }, 5000).unref();
    for (const stop of stops) stop();
    roles.validator.get()?.stop();
    await status?.close();
    await node.stop();
    log.info('node stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  const relay = 'healthUrl' in config.relay ? config.relay.healthUrl : config.relay.multiaddr.toString();
  log.info(
    { role: config.role, relay, data: options.dataDir, network: options.profile ?? config.network },
    'node starting',
  );
  if (options.status) {
    status = await startStatusServer({
      ...options.status,
      node,
      roles,
      walletToken: await walletToken(options.dataDir),
    });
    log.info({ url: status.url, port: status.port }, 'status server listening');
  }
  const unwatch = node.services.subscribe((s) => {
    if (!s) return;
    stops.push(...logEvents(s, node, roles, log));
    // On a terminal, bars for checking and loading the model and for the registration proof of work.
    stops.push(showProgress({ miner: s.miner?.state, registration: s.ledger?.registration.state }));
  });
  stops.push(unwatch);

  const services = await node.start();
  const network = services.ledger?.network ?? null;
  log.info(
    {
      peerId: services.peerId,
      listen: services.libp2p.getMultiaddrs().map((m) => m.toString()),
      network: network?.networkId ?? null,
      profile: network?.profile ?? null,
    },
    'node started',
  );
  if (options.profile && network?.profile !== options.profile)
    throw new NodeError(
      'network-config',
      network
        ? `--network ${options.profile} was given, but the relay serves the ${network.profile} network (${network.networkId}).`
        : `--network ${options.profile} was given, but no network config could be read (a multiaddr --relay serves none; give the relay's http URL).`,
    );
  if (stopping) return;
  if (options.faucetStake !== null) {
    // Refused with a sentence on a network without a faucet (only test networks have one).
    await services.ledger?.faucetStake(services.peerId, options.faucetStake);
    log.info({ rao: options.faucetStake.toString() }, 'staked from the faucet');
  }
  if (options.faucet !== null && services.ledger) {
    const { network, book } = services.ledger;
    if (!network.faucet)
      throw new NodeError('no-network', `${network.networkId} has no faucet; only test networks do.`);
    // In claims of at most the faucet's largest.
    const most = BigInt(network.faucet.maxClaim);
    for (let left = options.faucet; left > 0n; left -= left < most ? left : most)
      await book.publish('faucet.claim', { amount: (left < most ? left : most).toString() });
    log.info({ rao: options.faucet.toString() }, 'drew from the faucet');
  }
  await roles.startRole();
  const v = roles.validator.get();
  if (v)
    stops.push(
      follow(v.state, v.state.get(), (now, before) => {
        if (now.committed && now.committed.epoch !== before.committed?.epoch)
          log.info({ epoch: now.committed.epoch, uids: now.committed.uids.length }, 'weights committed');
        if (now.revealed && now.revealed.epoch !== before.revealed?.epoch)
          log.info({ epoch: now.revealed.epoch }, 'weights revealed');
      }),
    );
  log.info(readStatus(node, roles), 'role started');
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'wallet') {
    let call;
    try {
      if (argv.includes('--help')) {
        process.stdout.write(WALLET_USAGE);
        process.exit(0);
      }
      call = parseWalletArgs(argv.slice(1));
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(2);
    }
    process.exit(await runWalletCall(call));
  }
  let options: CliOptions | 'help';
  try {
    options = parseCliArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  if (options === 'help') {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const log = createLogger();
  await run(options, log).catch((err: unknown) => {
    log.error(errorFields(err), 'node failed');
    process.exit(1);
  });
}

// Run only as a program, not when a test imports the parser.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) void main(process.argv.slice(2));
