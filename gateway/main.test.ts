/** The gateway's command line: the Batch API's flags and their refusals. */
import { describe, expect, it } from 'vitest';
import { parseGatewayArgs, type GatewayOptions } from './main.ts';

const parse = (argv: string[]) => parseGatewayArgs(argv) as GatewayOptions;

describe('gateway flags', () => {
  it('prices batches, sizes their shards and uploads, and draws from the faucet', () => {
    const defaults = parse([]);
    expect(defaults['batch-price']).toBe(1_000_000n);
    expect(defaults['batch-shard-size']).toBe(25);
    expect(defaults['max-file-bytes']).toBe(32 * 1024 * 1024);
    expect(defaults.faucet).toBeUndefined();
    const set = parse([
      '--batch-price',
      '5000',
      '--batch-shard-size',
      '10',
      '--max-file-bytes',
      '1024',
      '--faucet',
      '7',
    ]);
    expect(set).toMatchObject({ 'batch-price': 5000n, 'batch-shard-size': 10, 'max-file-bytes': 1024, faucet: 7n });
  });

  it.each([
    [['--batch-price', '0'], /^--batch-price must be a whole number of rao above 0/],
    [['--batch-price', '1.5'], /^--batch-price must be/],
    [['--faucet', '-3'], /--faucet/],
    [['--batch-shard-size', '0'], /^--batch-shard-size must be/],
    [['--max-file-bytes', String(64 * 1024 * 1024)], /^--max-file-bytes must be at most/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseGatewayArgs(argv)).toThrow(message);
  });
});
