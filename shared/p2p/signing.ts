/**
 * Signatures on requests that carry authority: Ed25519 by the sender's libp2p key over a domain-separated
 * canonical (RFC 8785) encoding of everything in the request but the signature itself.
 */
import canonicalize from 'canonicalize';
import { peerIdFromString } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import type { RpcRequest } from './messages.ts';

const DOMAIN = 'webtensor/rpc/1\n';
const encoder = new TextEncoder();

export function signedBytes(req: Omit<RpcRequest, 'sig' | 't'>): Uint8Array {
  const body = canonicalize({ id: req.id, method: req.method, params: req.params, ts: req.ts, from: req.from });
  if (body === undefined) throw new Error('request cannot be canonicalised');
  return encoder.encode(DOMAIN + body);
}

export function toBase64Url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

export async function signRequest(key: PrivateKey, req: Omit<RpcRequest, 'sig' | 't'>): Promise<RpcRequest> {
  const sig = await key.sign(signedBytes(req));
  return { t: 'req', ...req, sig: toBase64Url(sig) };
}

/** True when `sig` is the `from` peer's signature over the request (the peer id embeds its Ed25519 key). */
export async function verifyRequest(req: RpcRequest): Promise<boolean> {
  try {
    const key = peerIdFromString(req.from).publicKey;
    if (!key) return false;
    return await key.verify(signedBytes(req), fromBase64Url(req.sig));
  } catch {
    return false;
  }
}
