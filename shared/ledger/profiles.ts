/**
 * The two network profiles that ship with the project. `production`: 12 s blocks and tempo 360 as on Bittensor.
 * `test`: 1 s blocks and 20-block epochs so a Playwright run sees several epochs, a cheap proof of work, and a
 * faucet whose key anyone can derive (so tests can fund validators with real signed records). A real deployment
 * passes its own config file to the relay (`--network FILE`) with its own owner key.
 */
import type { NetworkConfig, SubnetConfig } from './config.ts';

/** modelHash (shared/inference/protocol.ts) of the catalogue models subnets use; checked by a unit test. */
export const MODEL_HASHES = {
  'webtensor/tiny-llama': 'c9c3fe7937b2cefb42a00e17246d727077f19f118457553005082562c06eda68',
  'karpathy/stories260K': 'dcb17d900f3b16eb461ef2d589cd87e90dfadd503c30a07b6ad6567cfdc1b6ee',
} as const;

/** Public seed of the test faucet: its key is derivable by anyone, so it exists only in the test profile. */
export const TEST_FAUCET_SEED = 'webtensor test faucet';
/** The peer id of that key (derived from the seed; a unit test checks it). */
export const TEST_FAUCET_PEER_ID = '12D3KooWNkE4QRxj8EaRgCcU8sMKPH1BN4ymADeoJJ8pxgixgbGL';
/**
 * Production owner: a project key whose private half is not in the repository. Deployments set their own.
 */
export const PRODUCTION_OWNER = '12D3KooWGRUdNnGdN7P2jEJcpFcAQ9cR8KQxnspxHrg8jeCWK5Yp';

const yumaDefaults: SubnetConfig['yuma'] = {
  kappa: 32767,
  bondsPenalty: 65535,
  bondsMovingAverage: 900_000,
  yuma3: false,
  liquidAlpha: false,
  alphaLow: 45875,
  alphaHigh: 58982,
  alphaSigmoidSteepness: 1000,
  activityCutoff: 5000,
  stakeThreshold: '0',
};

export function productionProfile(genesisMs = Date.UTC(2026, 10, 1)): NetworkConfig {
  const subnet = (netuid: number, model: keyof typeof MODEL_HASHES): SubnetConfig => ({
    netuid,
    task: 'text-generation',
    model,
    modelHash: MODEL_HASHES[model],
    tempo: 360,
    maxUids: 256,
    maxValidators: 64,
    immunityPeriod: 4096,
    registrationDifficulty: 20,
    // One registration per block, three per epoch on target; the burn from 1 τ up to 100 τ.
    registration: {
      maxPerBlock: 1,
      targetPerEpoch: 3,
      minBurn: '1000000000',
      maxBurn: '100000000000',
      maxDifficulty: 28,
    },
    commitReveal: true,
    yuma: yumaDefaults,
  });
  return {
    networkId: 'webtensor-main',
    profile: 'production',
    genesisMs,
    blockMs: 12_000,
    emissionPerBlock: '1000000000',
    halvingIntervalBlocks: 10_500_000,
    owner: PRODUCTION_OWNER,
    ownerCut: 11796,
    delegateTake: 11796,
    initialBalances: {},
    clockSkewBlocks: 2,
    graceBlocks: 5,
    gossipWindowBlocks: 3,
    subnets: [subnet(1, 'karpathy/stories260K'), subnet(2, 'webtensor/tiny-llama')],
  };
}

export function testProfile(genesisMs: number): NetworkConfig {
  return {
    networkId: 'webtensor-test',
    profile: 'test',
    genesisMs,
    blockMs: 1000,
    emissionPerBlock: '1000000000',
    halvingIntervalBlocks: 1_000_000,
    owner: TEST_FAUCET_PEER_ID,
    ownerCut: 11796,
    delegateTake: 11796,
    initialBalances: { [TEST_FAUCET_PEER_ID]: '1000000000000000' },
    clockSkewBlocks: 3,
    graceBlocks: 4,
    gossipWindowBlocks: 4,
    faucet: { account: TEST_FAUCET_PEER_ID, maxClaim: '10000000000000' },
    subnets: [
      {
        netuid: 1,
        task: 'text-generation',
        model: 'webtensor/tiny-llama',
        modelHash: MODEL_HASHES['webtensor/tiny-llama'],
        tempo: 20,
        maxUids: 16,
        maxValidators: 4,
        immunityPeriod: 40,
        registrationDifficulty: 10,
        // Room for a test's miners to join at once; the faucet pays the burn.
        registration: {
          maxPerBlock: 4,
          targetPerEpoch: 8,
          minBurn: '100000000',
          maxBurn: '100000000000',
          maxDifficulty: 16,
        },
        commitReveal: true,
        yuma: { ...yumaDefaults, activityCutoff: 100 },
      },
    ],
  };
}
