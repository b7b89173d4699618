/**
 * The network config: everything every node must agree on before it can replay the ledger. Served by the relay
 * (`/network`), overridable by URL, and validated here; a bad config is refused with the field named.
 * Amounts are rao (1 TAO-like unit = 1e9 rao) as decimal strings, because JSON numbers stop at 2^53.
 */
import { z } from 'zod';

const peerId = z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{40,128}$/, 'expected a base58 peer id');
export const raoString = z.string().regex(/^(0|[1-9][0-9]{0,29})$/, 'expected a whole number of rao as a string');
const u16 = z.number().int().min(0).max(65535);

export const yumaConfigSchema = z.object({
  kappa: u16,
  bondsPenalty: u16,
  bondsMovingAverage: z.number().int().min(0).max(1_000_000),
  yuma3: z.boolean(),
  liquidAlpha: z.boolean(),
  alphaLow: u16,
  alphaHigh: u16,
  alphaSigmoidSteepness: z.number().int().min(-32768).max(32767),
  /** Blocks without a weights update after which a validator is inactive. */
  activityCutoff: z.number().int().positive(),
  stakeThreshold: raoString,
});

/**
 * Registration priced by demand, as subtensor does (docs/ledger.md, "Registration"): at most `maxPerBlock`
 * registrations per block; at each epoch's close the burn and the proof-of-work difficulty follow how many
 * registrations the epoch saw against `targetPerEpoch` (more: up; fewer: down, to the floor).
 */
export const registrationConfigSchema = z.object({
  maxPerBlock: z.number().int().min(1).max(64),
  targetPerEpoch: z.number().int().min(1).max(4096),
  /**
   * The burn's floor and ceiling, rao. The price moves by ratios, so a floor of 0 means no burn at all
   * (registration by proof of work alone: unit tests' small config; never the shipped profiles).
   */
  minBurn: raoString,
  maxBurn: raoString,
  /** The difficulty's ceiling in bits (its floor is the subnet's registrationDifficulty). */
  maxDifficulty: z.number().int().min(0).max(40),
});

export const subnetConfigSchema = z.object({
  netuid: z.number().int().min(0).max(1023),
  task: z.enum(['text-generation', 'feature-extraction']),
  model: z.string().min(1).max(128),
  /** shared/inference/protocol.ts modelHash of the model every miner must serve. */
  modelHash: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 hex digits'),
  /** Blocks per epoch. */
  tempo: z.number().int().min(4).max(100_000),
  maxUids: z.number().int().min(1).max(4096),
  maxValidators: z.number().int().min(1).max(4096),
  /** Blocks after registration during which a UID cannot be replaced. */
  immunityPeriod: z.number().int().nonnegative(),
  /** Leading zero bits the registration proof of work needs at least (the floor of the priced difficulty). */
  registrationDifficulty: z.number().int().min(0).max(40),
  registration: registrationConfigSchema,
  /** Weights are committed in an epoch's first half and revealed in its second; off: weights.set. */
  commitReveal: z.boolean(),
  yuma: yumaConfigSchema,
});

export const networkConfigSchema = z
  .object({
    networkId: z.string().regex(/^[a-z0-9-]{1,32}$/, 'expected 1-32 characters of a-z, 0-9 and -'),
    profile: z.enum(['production', 'test']),
    genesisMs: z.number().int().nonnegative(),
    blockMs: z.number().int().min(100).max(600_000),
    emissionPerBlock: raoString,
    /** Emission per block halves every this many blocks. */
    halvingIntervalBlocks: z.number().int().positive(),
    owner: peerId,
    /** The subnet owner's cut of each epoch's emission, as u16 (11796 = 18 %). */
    ownerCut: u16,
    /** A validator's cut of its dividends before the rest goes to its nominators, as u16. */
    delegateTake: u16,
    initialBalances: z.record(peerId, raoString),
    /** Records may carry a block at most this far ahead of the receiver's clock. */
    clockSkewBlocks: z.number().int().min(0).max(100),
    /** Blocks after an epoch's end before it is computed (late records can still arrive). */
    graceBlocks: z.number().int().min(0).max(10_000),
    /** Gossip accepts a record only if its block is at most this many blocks behind the receiver's clock. */
    gossipWindowBlocks: z.number().int().min(1).max(1000),
    /**
     * Test profile only: an account anyone may draw test τ from with a `faucet.claim` record, at most `maxClaim`
     * rao per claim (so tests and newcomers can stake without a shared key).
     */
    faucet: z.object({ account: peerId, maxClaim: raoString }).optional(),
    subnets: z.array(subnetConfigSchema).min(1).max(16),
  })
  .superRefine((c, ctx) => {
    const seen = new Set<number>();
    c.subnets.forEach((s, i) => {
      if (seen.has(s.netuid))
        ctx.addIssue({ code: 'custom', path: ['subnets', i, 'netuid'], message: `netuid ${s.netuid} appears twice` });
      seen.add(s.netuid);
      if (s.maxValidators > s.maxUids)
        ctx.addIssue({ code: 'custom', path: ['subnets', i, 'maxValidators'], message: 'exceeds maxUids' });
      if (BigInt(s.registration.maxBurn) < BigInt(s.registration.minBurn))
        ctx.addIssue({ code: 'custom', path: ['subnets', i, 'registration', 'maxBurn'], message: 'is below minBurn' });
      if (s.registration.maxDifficulty < s.registrationDifficulty)
        ctx.addIssue({
          code: 'custom',
          path: ['subnets', i, 'registration', 'maxDifficulty'],
          message: 'is below registrationDifficulty',
        });
    });
    if (c.faucet !== undefined && c.profile !== 'test')
      ctx.addIssue({ code: 'custom', path: ['faucet'], message: 'a faucet is only allowed in the test profile' });
    // Checkpoints cover every subnet at once: all subnets close their epochs at the same blocks.
    c.subnets.forEach((s, i) => {
      if (s.tempo !== c.subnets[0]!.tempo)
        ctx.addIssue({
          code: 'custom',
          path: ['subnets', i, 'tempo'],
          message: `every subnet must share one tempo (subnet ${c.subnets[0]!.netuid} has ${c.subnets[0]!.tempo})`,
        });
    });
    // Validators vote when the grace ends; gossip must have stopped taking the epoch's records by then, or a vote
    // can name roots that a record arriving a block later changes (and the epoch never gathers its votes).
    if (c.graceBlocks < c.gossipWindowBlocks)
      ctx.addIssue({
        code: 'custom',
        path: ['graceBlocks'],
        message: `must be at least gossipWindowBlocks (${c.gossipWindowBlocks}), so no record of an epoch arrives by gossip after its votes`,
      });
    if (c.graceBlocks + c.gossipWindowBlocks >= c.subnets[0]!.tempo / 2)
      ctx.addIssue({
        code: 'custom',
        path: ['gossipWindowBlocks'],
        message: 'grace plus gossip window must be under half an epoch, so checkpoints can be final before reveals',
      });
  });

export type NetworkConfig = z.infer<typeof networkConfigSchema>;
export type SubnetConfig = z.infer<typeof subnetConfigSchema>;

export class NetworkConfigError extends Error {
  override name = 'NetworkConfigError';
}

/** Parse and check a config; throws NetworkConfigError naming the first bad field. */
export function parseNetworkConfig(data: unknown): NetworkConfig {
  const r = networkConfigSchema.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new NetworkConfigError(
      `The network config is invalid at ${issue.path.join('.') || '(root)'}: ${issue.message}.`,
    );
  }
  return r.data;
}

/** The block at time `nowMs`: floor((now - genesis) / blockTime). */
export function blockAt(config: NetworkConfig, nowMs: number): number {
  return Math.max(0, Math.floor((nowMs - config.genesisMs) / config.blockMs));
}

/** Emission of one block, halving every halvingIntervalBlocks. */
export function blockEmission(config: NetworkConfig, block: number): bigint {
  const halvings = Math.floor(block / config.halvingIntervalBlocks);
  return halvings >= 64 ? 0n : BigInt(config.emissionPerBlock) >> BigInt(halvings);
}

export function findSubnet(config: NetworkConfig, netuid: number): SubnetConfig | undefined {
  return config.subnets.find((s) => s.netuid === netuid);
}

/** Blocks per epoch: every subnet shares one tempo, and checkpoints follow it. */
export const epochBlocks = (config: NetworkConfig): number => config.subnets[0]!.tempo;

/** The epoch a block belongs to. */
export const epochOf = (config: NetworkConfig, block: number): number => Math.floor(block / epochBlocks(config));
