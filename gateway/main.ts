/**
 * `npm run gateway -- [--port 8080] [--relay URL] [--data DIR] [...]`: a client node of the network with an
 * OpenAI-compatible HTTP face at http://HOST:PORT/v1. It logs one JSON line per event and stops cleanly on
 * SIGINT or SIGTERM. Exit codes: 0 after a clean stop (or --help), 1 when it could not start, 2 for a bad argument.
 */
import '../shared/polyfills.ts';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { clientConfig } from '../core/config.ts';
import { WebtensorNode } from '../core/node.ts';
import { createLogger, DEFAULT_RELAY, relayOf } from '../core/nodejs/cli.ts';
import { defaultModelDirs } from '../core/nodejs/model-dirs.ts';
import { createNodePlatform } from '../core/nodejs/platform.ts';
import { chatTemplateFor, type ChatTemplate } from './chat-template.ts';
import { MinerRouter } from './router.ts';
import { startGateway } from './server.ts';
import { Auditor } from '../core/services/auditor.ts';

export const USAGE = `Usage: npm run gateway -- [options]

  --port N              the HTTP port (default 8080; 0: any free one)
  --host HOST           the interface to listen on (default 127.0.0.1)
  --relay URL|ADDR      the relay's http URL or multiaddr (default ${DEFAULT_RELAY})
  --data DIR            where the gateway's node keeps its key and ledger (default ./.webtensor-gateway)
  --api-key KEY         a key requests must bear as 'Authorization: Bearer KEY' (repeat for several)
  --api-keys-file PATH  more keys, one per line (# starts a comment); no key at all: the gateway is open
  --cors-origin ORIGIN  origins browser apps may call from, comma-separated, or * (default *)
  --rate-limit N        requests per minute per key, or per IP on an open gateway (default 600)
  --timeout S           seconds a request may take before 504 (default 60)
  --audit-rate F        the share of answers handed to validators to check, 0 to 1 (default 0.1)
  --help                print this and exit
`;

const port = (flag: string) =>
  z
    .string()
    .regex(/^\d{1,5}$/, `${flag} must be a port number from 0 to 65535.`)
    .transform(Number)
    .refine((p) => p <= 65535, `${flag} must be a port number from 0 to 65535.`);

const optionsSchema = z.object({
  port: port('--port').default(8080),
  host: z.string().min(1, '--host must name an interface.').default('127.0.0.1'),
  relay: z.string().default(DEFAULT_RELAY),
  data: z.string().trim().min(1, '--data must name a directory.').default('./.webtensor-gateway'),
  'api-key': z
    .array(z.string().regex(/^\S{8,256}$/, '--api-key must be 8 to 256 characters without spaces.'))
    .default([]),
  'api-keys-file': z.string().optional(),
  'cors-origin': z.string().min(1).default('*'),
  'rate-limit': z
    .string()
    .regex(/^\d+$/, '--rate-limit must be a whole number of requests per minute.')
    .transform(Number)
    .refine((n) => n >= 1, '--rate-limit must be at least 1.')
    .default(600),
  timeout: z
    .string()
    .regex(/^\d+(\.\d+)?$/, '--timeout must be a number of seconds.')
    .transform(Number)
    .refine((n) => n >= 1 && n <= 600, '--timeout must be from 1 to 600 seconds.')
    .default(60),
  'audit-rate': z
    .string()
    .regex(/^(0(\.\d+)?|1(\.0+)?)$/, '--audit-rate must be a number from 0 to 1.')
    .transform(Number)
    .default(0.1),
});
export type GatewayOptions = z.infer<typeof optionsSchema>;

/** The options from `argv`, or 'help'; throws an Error whose message names the bad argument. */
export function parseGatewayArgs(argv: string[]): GatewayOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      relay: { type: 'string' },
      data: { type: 'string' },
      'api-key': { type: 'string', multiple: true },
      'api-keys-file': { type: 'string' },
      'cors-origin': { type: 'string' },
      'rate-limit': { type: 'string' },
      timeout: { type: 'string' },
      'audit-rate': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) return 'help';
  const parsed = optionsSchema.safeParse(values);
  if (!parsed.success) throw new Error(parsed.error.issues[0]!.message);
  relayOf(parsed.data.relay); // throws a sentence for a bad --relay
  return parsed.data;
}

/** API keys from the flags and the keys file (one per line; blank lines and # comments skipped). */
export function apiKeysOf(options: GatewayOptions): string[] {
  const fromFile = options['api-keys-file']
    ? readFileSync(options['api-keys-file'], 'utf8')
        .split('\n')
        .map((l) => l.replace(/#.*/, '').trim())
        .filter(Boolean)
    : [];
  for (const key of fromFile)
    if (!/^\S{8,256}$/.test(key))
      throw new Error(`${options['api-keys-file']} holds a key that is not 8 to 256 characters without spaces.`);
  return [...options['api-key'], ...fromFile];
}

async function main(argv: string[]): Promise<void> {
  let options: GatewayOptions | 'help';
  let keys: string[];
  try {
    options = parseGatewayArgs(argv);
    keys = options === 'help' ? [] : apiKeysOf(options);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
  if (options === 'help') {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const log = createLogger();
  const node = new WebtensorNode(
    clientConfig(relayOf(options.relay)),
    createNodePlatform({ dataDir: options.data, durable: true }),
  );
  let stopping = false;
  let close = async () => {};
  const shutdown = async (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'gateway stopping');
    setTimeout(() => process.exit(1), 5000).unref();
    await close();
    await node.stop();
    log.info('gateway stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  try {
    const services = await node.start();
    const network = () => services.ledger?.network ?? null;
    if (!network()) throw new Error('The relay serves no network config (give its http URL as --relay).');
    const dirs = defaultModelDirs();
    const templates = new Map<string, Promise<ChatTemplate>>();
    const templateOf = (model: string) => {
      if (!templates.has(model)) templates.set(model, chatTemplateFor(model, [dirs.generated, dirs.shared]));
      return templates.get(model)!;
    };
    const router = new MinerRouter({ client: services.client });
    const auditor = new Auditor(
      { rpc: services.rpc, snapshot: services.ledger?.consensus.snapshot ?? null },
      {
        rate: options['audit-rate'],
        onVerdict: (v) => log.info(v, 'audit verdict'),
        onFailure: (reason) => log.warn({ reason }, 'audit not judged'),
      },
    );
    const gateway = await startGateway({
      host: options.host,
      port: options.port,
      network,
      router,
      templates: templateOf,
      apiKeys: keys,
      corsOrigin: options['cors-origin'],
      ratePerMinute: options['rate-limit'],
      bodyLimit: 256 * 1024,
      deadlineMs: options.timeout * 1000,
      onAnswered: (netuid, params, result) => auditor.offer(netuid, params, result),
      status: () => ({
        peers: services.peers.direct(),
        // The miners each model would be asked of, in the order the client ranks them.
        candidates: Object.fromEntries(
          (network()?.subnets ?? []).map((s) => [s.model, services.client.candidates(s).map((c) => c.hotkey)]),
        ),
        audits: auditor.state.get(),
      }),
      log,
    });
    close = async () => {
      auditor.stop();
      await gateway.close();
    };
    log.info(
      { url: gateway.url, peerId: services.peerId, network: network()!.networkId, keys: keys.length },
      'gateway listening',
    );
  } catch (err) {
    log.error({ error: (err as Error).message }, 'gateway failed');
    process.exit(1);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) void main(process.argv.slice(2));
