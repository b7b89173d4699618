/**
 * Registration proof of work (hashcash): sha256 over the network, subnet, author, a recent checkpoint's hash
 * and a nonce must start with `difficulty` zero bits. Bound to all four, a proof cannot be reused by another
 * key, subnet or network, nor computed before that checkpoint closed (the replay takes only recent ones: see
 * state.ts, `register`); opening a tab literally mines its way into the subnet.
 */
import { NodeError } from '../errors.ts';
import { sha256 } from '@noble/hashes/sha2.js';

const encoder = new TextEncoder();

export interface PowInput {
  network: string;
  netuid: number;
  author: string;
  /** The hash of the checkpoint the proof is bound to (the genesis hash in a network's first epochs). */
  checkpoint: string;
}

function challenge(p: PowInput, nonce: string): Uint8Array {
  return sha256(
    encoder.encode(`webtensor/register/2\n${p.network}\n${p.netuid}\n${p.author}\n${p.checkpoint}\n${nonce}`),
  );
}

export function leadingZeroBits(hash: Uint8Array): number {
  let bits = 0;
  for (const byte of hash) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

/** The zero bits a register record's proof of work reaches. */
export function proofOfWorkBits(
  network: string,
  r: { author: string; body: { netuid: number; nonce: string; checkpoint: string } },
): number {
  const input = { network, netuid: r.body.netuid, author: r.author, checkpoint: r.body.checkpoint };
  return leadingZeroBits(challenge(input, r.body.nonce));
}

export interface PowProgress {
  hashes: number;
  /** Expected hashes for this difficulty (2^difficulty). */
  expected: number;
}

/**
 * Search nonces from `start` until one reaches `difficulty`. Calls `onProgress` every 4096 hashes and yields to
 * the event loop there (so a worker stays responsive); `signal` stops the search.
 */
export async function solveProofOfWork(
  input: PowInput & { difficulty: number; start?: bigint },
  onProgress?: (p: PowProgress) => void,
  signal?: AbortSignal,
): Promise<{ nonce: string; hashes: number }> {
  const expected = 2 ** input.difficulty;
  let n = input.start ?? 0n;
  for (let hashes = 1; ; hashes++, n = (n + 1n) & 0xffffffffffffffffn) {
    const nonce = n.toString(16).padStart(16, '0');
    if (leadingZeroBits(challenge(input, nonce)) >= input.difficulty) return { nonce, hashes };
    if (hashes % 4096 === 0) {
      onProgress?.({ hashes, expected });
      await new Promise((r) => setTimeout(r, 0));
      if (signal?.aborted) throw new NodeError('cancelled', 'The proof of work was cancelled.');
    }
  }
}
