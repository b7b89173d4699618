/** The test profile's faucet key, derived from its public seed. Refused for any other profile. */
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { sha256 } from '@noble/hashes/sha2.js';
import type { NetworkConfig } from './config.ts';
import { NodeError } from '../errors.ts';

export async function faucetKey(config: NetworkConfig): Promise<PrivateKey> {
  if (config.profile !== 'test' || !config.faucetSeed)
    throw new NodeError(
      'no-network',
      'This network has no faucet: funding from a public key only exists in the test profile.',
    );
  return generateKeyPairFromSeed('Ed25519', sha256(new TextEncoder().encode(config.faucetSeed)));
}
