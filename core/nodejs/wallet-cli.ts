/**
 * `npm run node -- wallet <command> …`: the wallet of a headless node that is running, through its status port
 * (wallet-http.ts). Reading needs nothing; spending reads the token the node wrote into its data directory.
 *
 *   wallet balance                      balance, stakes, earnings and history (JSON)
 *   wallet send TO AMOUNT               AMOUNT in τ, like 1.5
 *   wallet stake HOTKEY AMOUNT          nominate HOTKEY
 *   wallet unstake HOTKEY AMOUNT
 *   wallet faucet AMOUNT                test networks only
 *
 * Options: --data DIR (the node's, for its token; default ./.webtensor-node), --status-port N (the node's),
 * --status-host HOST (default 127.0.0.1). Prints the node's JSON answer; exit 0 on success, 1 when refused or
 * unreachable, 2 for a bad argument.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { WALLET_TOKEN_FILE } from './wallet-http.ts';

export const WALLET_USAGE = `Usage: npm run node -- wallet <command> [args] --status-port N [--data DIR] [--status-host HOST]

  balance                 balance, stakes, earnings and the records this node signed
  send TO AMOUNT          send AMOUNT τ (like 1.5) to the peer id TO
  stake HOTKEY AMOUNT     stake AMOUNT τ on HOTKEY (nominate a validator)
  unstake HOTKEY AMOUNT   take AMOUNT τ of stake off HOTKEY
  faucet AMOUNT           test networks: draw AMOUNT test τ from the faucet
`;

const COMMANDS = {
  send: ['to', 'amount'],
  stake: ['hotkey', 'amount'],
  unstake: ['hotkey', 'amount'],
  faucet: ['amount'],
} as const;
const PATHS = { send: 'transfer', stake: 'stake', unstake: 'unstake', faucet: 'faucet' } as const;

export interface WalletCall {
  method: 'GET' | 'POST';
  url: string;
  body: Record<string, string> | null;
  dataDir: string;
}

/** The request `argv` (after "wallet") asks for; throws an Error naming the bad argument. */
export function parseWalletArgs(argv: string[]): WalletCall {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      data: { type: 'string', default: './.webtensor-node' },
      'status-port': { type: 'string' },
      'status-host': { type: 'string', default: '127.0.0.1' },
    },
  });
  const [command, ...args] = positionals;
  const port = values['status-port'];
  if (!port || !/^\d{1,5}$/.test(port) || Number(port) > 65535)
    throw new Error("--status-port must be the running node's status port (a number from 1 to 65535).");
  const base = `http://${values['status-host']}:${port}/wallet`;
  if (command === 'balance') {
    if (args.length > 0) throw new Error('balance takes no arguments.');
    return { method: 'GET', url: base, body: null, dataDir: resolve(values.data) };
  }
  if (!command || !(command in COMMANDS))
    throw new Error(`Unknown wallet command "${command ?? ''}"; use balance, send, stake, unstake or faucet.`);
  const names = COMMANDS[command as keyof typeof COMMANDS];
  if (args.length !== names.length) throw new Error(`${command} takes ${names.map((n) => n.toUpperCase()).join(' ')}.`);
  const body = Object.fromEntries(names.map((n, k) => [n, args[k]!]));
  return {
    method: 'POST',
    url: `${base}/${PATHS[command as keyof typeof PATHS]}`,
    body,
    dataDir: resolve(values.data),
  };
}

/** Run `call` against the node; resolves with the exit code after printing the answer. */
export async function runWalletCall(call: WalletCall): Promise<number> {
  const headers: Record<string, string> = {};
  if (call.body) {
    const token = await readFile(join(call.dataDir, WALLET_TOKEN_FILE), 'utf8').catch(() => null);
    if (!token) {
      process.stderr.write(`No ${WALLET_TOKEN_FILE} in ${call.dataDir}: give the running node's --data.\n`);
      return 1;
    }
    headers['authorization'] = `Bearer ${token.trim()}`;
    headers['content-type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(call.url, {
      method: call.method,
      headers,
      ...(call.body ? { body: JSON.stringify(call.body) } : {}),
    });
  } catch (err) {
    process.stderr.write(`No node answers at ${call.url}: ${(err as Error).message}\n`);
    return 1;
  }
  const text = await res.text();
  (res.ok ? process.stdout : process.stderr).write(`${text}\n`);
  return res.ok ? 0 : 1;
}
