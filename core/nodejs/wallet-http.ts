/**
 * A headless node's wallet on its status port (the same Wallet service a tab's /wallet page uses):
 *
 *   GET  /wallet                       balance, spendable, stakes, earnings and history (amounts in rao)
 *   POST /wallet/transfer   {to, amount}        amounts in τ as text ("1.5"); answers {id} of the signed record
 *   POST /wallet/stake      {hotkey, amount}
 *   POST /wallet/unstake    {hotkey, amount}
 *   POST /wallet/faucet     {amount}            test networks only
 *
 * Reading is open like /status. Spending needs `Authorization: Bearer <token>`, the token the node writes to
 * `<data>/wallet-token` (mode 0600) at start: only who can read the node's data directory can spend its τ (the
 * port listens on 127.0.0.1 unless told otherwise). `npm run node -- wallet …` (wallet-cli.ts) is the client.
 * A refusal is 400 {error: 'bad-input', message}, and nothing is signed.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { recordId } from '../../shared/ledger/records.ts';
import { WebtensorError } from '../../shared/errors.ts';
import type { WebtensorNode } from '../node.ts';

export const WALLET_TOKEN_FILE = 'wallet-token';

/** The node's wallet token: read from `<dataDir>/wallet-token`, or made there (0600) on first start. */
export async function walletToken(dataDir: string): Promise<string> {
  const path = join(dataDir, WALLET_TOKEN_FILE);
  const existing = await readFile(path, 'utf8').catch(() => null);
  if (existing && /^[0-9a-f]{64}$/.test(existing.trim())) return existing.trim();
  const token = randomBytes(32).toString('hex');
  await mkdir(dataDir, { recursive: true });
  await writeFile(path, `${token}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
  return token;
}

const target = z.string().max(200);
const amount = z.string().max(64);
const bodies = {
  transfer: z.object({ to: target, amount }),
  stake: z.object({ hotkey: target, amount }),
  unstake: z.object({ hotkey: target, amount }),
  faucet: z.object({ amount }),
} as const;

const bigintsAsStrings = (v: unknown): unknown =>
  JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)));

export function registerWalletRoutes(app: FastifyInstance, node: WebtensorNode, token: string | null): void {
  const wallet = () => {
    const w = node.services.get()?.ledger?.wallet;
    if (!w) throw Object.assign(new Error('The node has not joined a network yet.'), { statusCode: 503 });
    return w;
  };
  app.get('/wallet', async () => {
    const w = wallet();
    return bigintsAsStrings({
      peerId: w.self,
      balance: w.balance(),
      spendable: w.spendable(),
      stakes: w.stakes(),
      earnings: w.earnings(),
      history: await w.history(),
    });
  });
  for (const action of Object.keys(bodies) as (keyof typeof bodies)[])
    app.post(`/wallet/${action}`, async (request, reply) => {
      const given = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1] ?? '';
      const ok =
        token !== null && given.length === token.length && timingSafeEqual(Buffer.from(given), Buffer.from(token));
      if (!ok)
        return reply.code(401).send({
          error: 'unauthorized',
          message: `Spending needs the token in the node's data directory (${WALLET_TOKEN_FILE}), as 'Authorization: Bearer TOKEN'.`,
        });
      const parsed = bodies[action].safeParse(request.body);
      if (!parsed.success)
        return reply.code(400).send({
          error: 'bad-input',
          message: `${parsed.error.issues[0]!.path.join('.') || 'body'}: ${parsed.error.issues[0]!.message}`,
        });
      const b = parsed.data as { to?: string; hotkey?: string; amount: string };
      try {
        const w = wallet();
        const record =
          action === 'transfer'
            ? await w.transfer(b.to!, b.amount)
            : action === 'stake'
              ? await w.stake(b.hotkey!, b.amount)
              : action === 'unstake'
                ? await w.unstake(b.hotkey!, b.amount)
                : await w.faucet(b.amount);
        return { id: recordId(record), kind: record.kind, seq: record.seq, block: record.block };
      } catch (err) {
        if (err instanceof WebtensorError || (err as { code?: string }).code)
          return reply.code(400).send({ error: (err as { code: string }).code, message: (err as Error).message });
        throw err;
      }
    });
}
