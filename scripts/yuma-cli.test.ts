/** The CLI as a user runs it: one case in, JSON out; bad input exits non-zero with one line naming the problem. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { thresholdCase } from '../shared/yuma/testing.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const sharedDir = process.env['WEBTENSOR_SHARED'] ?? resolve(root, '../shared');
const vectors = JSON.parse(readFileSync(resolve(sharedDir, 'yuma/vectors.json'), 'utf8')) as Record<string, unknown>[];
const dir = mkdtempSync(join(tmpdir(), 'yuma-cli-'));

function cli(content: string, ...flags: string[]) {
  const file = join(dir, `case-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, content);
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/yuma-cli.ts', file, ...flags], {
    cwd: root,
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const epochCase = vectors.find((c) => c['kind'] === 'epoch')!;
const sequence = vectors.find((c) => c['name'] === 'yuma1_test_bonds_ema_sequence')!;

describe('yuma CLI', () => {
  it('prints name and one entry per epoch with every required field', () => {
    const r = cli(JSON.stringify(sequence));
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { name: string; epochs: Record<string, unknown>[] };
    expect(out.name).toBe(sequence['name']);
    expect(out.epochs).toHaveLength((sequence['epochs'] as unknown[]).length);
    expect(Object.keys(out.epochs[0]!).sort()).toEqual(
      [
        'consensus_u16',
        'incentive_u16',
        'dividends_u16',
        'validator_trust_u16',
        'bonds_u16',
        'emission',
        'server_emission',
        'validator_emission',
        'new_validator_permit',
        'consensus',
        'incentive',
        'dividends',
        'validator_trust',
      ].sort(),
    );
  });

  it('prints weighted_median subcases', () => {
    const r = cli(JSON.stringify(vectors.find((c) => c['kind'] === 'weighted_median')));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).subcases).toEqual([1.0, 1.0, 0.5, 1.0, 0.7, 0.7, 1.0, 1.0, 1.0, 0.6, 0.6]);
  });

  it('--replay feeds each epoch its predecessor’s bonds and permits', () => {
    const tampered = structuredClone(sequence) as { epochs: { bonds_prev: number[][] }[] };
    tampered.epochs[1]!.bonds_prev = tampered.epochs[1]!.bonds_prev.map((row) => row.map(() => 0));
    const given = JSON.parse(cli(JSON.stringify(tampered)).stdout);
    const replayed = JSON.parse(cli(JSON.stringify(tampered), '--replay').stdout);
    const honest = JSON.parse(cli(JSON.stringify(sequence)).stdout);
    expect(replayed.epochs[1]).toEqual(honest.epochs[1]);
    expect(given.epochs[1]).not.toEqual(honest.epochs[1]);
  });

  it('keeps a u64 max stake and rao amount exact, printing exact integers', () => {
    const u64Max = '18446744073709551615';
    const r = cli(thresholdCase(u64Max, '18446744073709551614', u64Max));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // One rao below the threshold counts as no stake: validator 1 earns nothing and loses its permit.
    expect(r.stdout).toContain('"dividends_u16":[65535,0,0]');
    expect(r.stdout).toContain('"new_validator_permit":[true,false,false]');
    // floor(u64::MAX / 2) each for the validator and the miner, every digit.
    expect(r.stdout).toContain('"emission":[9223372036854775807,0,9223372036854775807]');
    expect(r.stdout).toContain('"server_emission":[0,0,9223372036854775807]');
    expect(r.stdout).toContain('"validator_emission":[9223372036854775807,0,0]');
  });

  it('keeps a stake of 2^53 + 1 exact: one rao above 2^53 is not 2^53', () => {
    const r = cli(thresholdCase('9007199254740993', '9007199254740992', '9007199254740995'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('"dividends_u16":[65535,0,0]');
    expect(r.stdout).toContain('"emission":[4503599627370497,0,4503599627370497]');
  });

  const bad: [string, string, RegExp][] = [
    ['bad JSON', '{"kind": ', /not valid JSON/],
    ['unknown kind', JSON.stringify({ ...epochCase, kind: 'epoc' }), /kind/],
    ['n mismatch', JSON.stringify({ ...epochCase, n: 4 }), /stake: has 5 entries, n is 4/],
    [
      'out-of-range u16',
      JSON.stringify({ ...epochCase, weights: [[0, 0, 0, 70000, 0], ...(epochCase['weights'] as unknown[]).slice(1)] }),
      /weights\[0\]\[3\]/,
    ],
    [
      'ragged matrix',
      JSON.stringify({ ...epochCase, bonds_prev: [[0], ...(epochCase['bonds_prev'] as unknown[]).slice(1)] }),
      /bonds_prev\[0\]: has 1 columns, n is 5/,
    ],
    [
      'missing field',
      JSON.stringify({ ...epochCase, params: { ...(epochCase['params'] as object), kappa_u16: undefined } }),
      /params\.kappa_u16/,
    ],
    [
      'a stake of u64 max + 1',
      thresholdCase('0', '18446744073709551616', '1'),
      /: stake\[1\]: Too big: expected a u64 \(at most 18446744073709551615\), got 18446744073709551616$/m,
    ],
    [
      'a rao emission of u64 max + 1',
      thresholdCase('0', '0', '18446744073709551616'),
      /: params\.rao_emission: Too big: expected a u64 \(at most 18446744073709551615\)/,
    ],
  ];
  for (const [what, content, message] of bad) {
    it(`refuses ${what} with one line and a non-zero exit`, () => {
      const r = cli(content);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    });
  }
});
