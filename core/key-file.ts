/** A node key as bytes a person can keep (libp2p's protobuf encoding), and back. Only Ed25519 keys are identities. */
import { privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { NodeError } from '../shared/errors.ts';
import type { Identity } from './platform.ts';

export const encodeKey = (key: PrivateKey): Uint8Array => privateKeyToProtobuf(key);

/** Parse an exported key; refuses anything but an Ed25519 libp2p private key, saying what it got. */
export function decodeKey(bytes: Uint8Array): PrivateKey {
  let key: PrivateKey;
  try {
    key = privateKeyFromProtobuf(bytes);
  } catch {
    throw new NodeError(
      'identity',
      'That file is not a webtensor key (expected a libp2p private key file exported from a node).',
    );
  }
  if (key.type !== 'Ed25519')
    throw new NodeError('identity', `That key is ${key.type}; webtensor identities are Ed25519.`);
  return key;
}

/** Replace an identity's stored key with an exported one (it takes effect on the next start); returns its peer id. */
export async function importKeyFile(identity: Identity, bytes: Uint8Array): Promise<string> {
  const key = decodeKey(bytes);
  await identity.saveKey(key);
  return peerIdFromPrivateKey(key).toString();
}
