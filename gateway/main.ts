/**
 * `npm run gateway -- [--port 8080] [--relay URL] [--data DIR] [...]`: a client node of the network with an
 * OpenAI-compatible HTTP face at http://HOST:PORT/v1. It logs one JSON line per event and stops cleanly on
 * SIGINT or SIGTERM. Exit codes: 0 after a clean stop (or --help), 1 when it could not start, 2 for a bad argument.
 */
import '../shared/polyfills.ts';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { clientConfig } from '../core/config.ts';
import { WebtensorNode, type NodeServices } from '../core/node.ts';
import { createLogger, DEFAULT_RELAY, relayOf } from '../core/nodejs/cli.ts';
import { defaultModelDirs } from '../core/nodejs/model-dirs.ts';
import { createNodePlatform } from '../core/nodejs/platform.ts';
import { chatTemplateFor, type ChatTemplate } from './chat-template.ts';
import { MinerRouter } from './router.ts';
import { startGateway } from './server.ts';
import { Auditor } from '../core/services/auditor.ts';
import { DEFAULT_MAX_BLOB_BYTES } from '../core/services/blobs.ts';
import { DEFAULT_BATCH_PRICE, DEFAULT_REQUESTS_PER_SHARD } from './batch-object.ts';
import { BatchService } from './batches.ts';
import { DEFAULT_MAX_FILE_BYTES, FileStore } from './files.ts';
import { NodeError } from '../shared/errors.ts';

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
  --batch-price RAO     what a batch request costs, rao per request, paid from the gateway's wallet (default ${DEFAULT_BATCH_PRICE})
  --batch-shard-size N  requests per shard a batch's job aims for (default ${DEFAULT_REQUESTS_PER_SHARD})
  --max-file-bytes N    the largest batch file upload, bytes (default ${DEFAULT_MAX_FILE_BYTES})
  --faucet RAO          test networks: draw RAO from the faucet into the gateway's wallet at start (pays batches)
  --help                print this and exit
`;

const port = (flag: string) =>
  z
    .string()
    .regex(/^\d{1,5}$/, `${flag} must be a port number from 0 to 65535.`)
    .transform(Number)
    .refine((p) => p <= 65535, `${flag} must be a port number from 0 to 65535.`);

const rao = (flag: string) =>
  z
    .string()
    .regex(/^[1-9]\d{0,24}$/, `${flag} must be a whole number of rao above 0, like 1000000 (1 τ = 1e9 rao).`)
    .transform(BigInt);

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
  'batch-price': rao('--batch-price').default(DEFAULT_BATCH_PRICE),
  'batch-shard-size': z
    .string()
    .regex(/^[1-9]\d{0,5}$/, '--batch-shard-size must be a whole number of requests from 1.')
    .transform(Number)
    .default(DEFAULT_REQUESTS_PER_SHARD),
  'max-file-bytes': z
    .string()
    .regex(/^[1-9]\d{0,9}$/, '--max-file-bytes must be a whole number of bytes.')
    .transform(Number)
    .refine(
      (n) => n <= DEFAULT_MAX_BLOB_BYTES,
      `--max-file-bytes must be at most ${DEFAULT_MAX_BLOB_BYTES} (a job file is one blob).`,
    )
    .default(DEFAULT_MAX_FILE_BYTES),
  faucet: rao('--faucet').optional(),
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
      'batch-price': { type: 'string' },
      'batch-shard-size': { type: 'string' },
      'max-file-bytes': { type: 'string' },
      faucet: { type: 'string' },
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

/**
 * Test networks: draw `amount` rao from the faucet into the gateway node's free balance (its batches' deposits),
 * in claims of at most the faucet's largest.
 */
async function claimFaucet(services: NodeServices, amount: bigint): Promise<void> {
  const ledger = services.ledger!;
  const faucet = ledger.network.faucet;
  if (!faucet) throw new NodeError('no-network', `${ledger.network.networkId} has no faucet; only test networks do.`);
  const most = BigInt(faucet.maxClaim);
  for (let left = amount; left > 0n; left -= left < most ? left : most)
    await ledger.book.publish('faucet.claim', { amount: (left < most ? left : most).toString() });
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
    if (options.faucet !== undefined) await claimFaucet(services, options.faucet);
    const router = new MinerRouter({ client: services.client });
    const auditor = new Auditor(
      { rpc: services.rpc, snapshot: services.ledger?.consensus.snapshot ?? null },
      {
        rate: options['audit-rate'],
        onVerdict: (v) => log.info(v, 'audit verdict'),
        onFailure: (reason) => log.warn({ reason }, 'audit not judged'),
      },
    );
    const files = new FileStore(join(options.data, 'batch-files'));
    await files.load();
    const ledger = services.ledger;
    const batches = new BatchService({
      dir: join(options.data, 'batches'),
      files,
      jobs: () => services.jobs?.client ?? null,
      wallet: () => ledger?.wallet ?? null,
      network,
      currentBlock: () => ledger?.consensus.currentBlock() ?? 0,
      price: options['batch-price'],
      requestsPerShard: options['batch-shard-size'],
      maxBlobBytes: services.blobs?.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES,
      log,
    });
    await batches.start();
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
      batch: { files, batches, maxFileBytes: options['max-file-bytes'] },
      status: () => ({
        peers: services.peers.direct(),
        // The miners each model would be asked of, in the order the client ranks them.
        candidates: Object.fromEntries(
          (network()?.subnets ?? []).map((s) => [s.model, services.client.candidates(s).map((c) => c.hotkey)]),
        ),
        audits: auditor.state.get(),
        wallet: ledger && {
          peer_id: ledger.wallet.self,
          balance_rao: ledger.wallet.balance().toString(),
          spendable_rao: ledger.wallet.spendable().toString(),
        },
      }),
      log,
    });
    close = async () => {
      auditor.stop();
      batches.stop();
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
