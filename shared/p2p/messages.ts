/**
 * `/webtensor/rpc/1` messages: schemas, limits and the frame codec. Every frame is one length-prefixed JSON
 * message; every decoded message is schema-checked before anything reads it.
 */
import { z } from 'zod';
import { WebtensorError } from '../errors.ts';
import { RPC_ERROR_CODES, type RpcErrorCode } from '../names.ts';

/** The most a bench sink accepts on one stream. */
export const MAX_BENCH_BYTES = 64 * 1024 * 1024;
/** Largest frame either side accepts (bytes of JSON). */
export const MAX_FRAME_BYTES = 64 * 1024;
/** Requests older or newer than this (by the sender's clock) are refused as stale. */
export const MAX_CLOCK_SKEW_MS = 30_000;

export const errorCodes = RPC_ERROR_CODES;
export type ErrorCode = RpcErrorCode;

const id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1-64 characters of [A-Za-z0-9_-]');
const peerIdString = z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{40,128}$/, 'expected a base58 peer id');

export const requestSchema = z.object({
  t: z.literal('req'),
  id,
  method: z.string().regex(/^[a-z][a-z0-9.-]{0,63}$/, 'expected a method name like "node.echo"'),
  params: z.json(),
  ts: z.number().int().nonnegative(),
  from: peerIdString,
  sig: z.string().regex(/^[A-Za-z0-9_-]{1,200}$/, 'expected a base64url signature'),
});
export type RpcRequest = z.infer<typeof requestSchema>;

const rpcError = z.object({ code: z.enum(errorCodes), message: z.string().max(500) });
export type RpcErrorBody = z.infer<typeof rpcError>;

export const replySchema = z.union([
  z.object({ t: z.literal('res'), id, ok: z.literal(true), result: z.json() }),
  z.object({ t: z.literal('res'), id, ok: z.literal(false), error: rpcError }),
  z.object({ t: z.literal('chunk'), id, seq: z.number().int().nonnegative(), data: z.json() }),
]);
export type RpcReply = z.infer<typeof replySchema>;

/**
 * The relay's peer list; `addrs` names the directly dialable addresses (e.g. a headless node's WebSocket) of some.
 * `complete` says it lists every peer the relay holds (not a sample), so a peer missing from it has left.
 */
export const peerListSchema = z.object({
  peers: z.array(peerIdString).max(10_000),
  addrs: z.record(peerIdString, z.array(z.string().max(300)).max(8)).optional(),
  complete: z.boolean().optional(),
});
export const benchReceiptSchema = z.object({ received: z.number().int().nonnegative() });

/** A protocol-level failure with a code the other side can act on. */
export class RpcError extends WebtensorError<ErrorCode> {
  override name = 'RpcError';
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeFrame(message: unknown): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(message));
  if (bytes.byteLength > MAX_FRAME_BYTES)
    throw new RpcError('too-large', `message is ${bytes.byteLength} bytes; the limit is ${MAX_FRAME_BYTES}`);
  return bytes;
}

/** Decode and schema-check one frame; throws RpcError naming what is wrong. */
export function decodeFrame<T>(bytes: Uint8Array, schema: z.ZodType<T>): T {
  if (bytes.byteLength > MAX_FRAME_BYTES)
    throw new RpcError('too-large', `frame is ${bytes.byteLength} bytes; the limit is ${MAX_FRAME_BYTES}`);
  let data: unknown;
  try {
    data = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new RpcError('bad-frame', 'frame is not UTF-8 JSON');
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RpcError('bad-schema', `${issue.path.join('.') || '(message)'}: ${issue.message}`);
  }
  return parsed.data;
}
