/**
 * Every case of ../shared/yuma/vectors.json: bit-exact against `expected_emulation`, and within the source
 * test's tolerance of the literal `expected` numbers. (Test files may read files; shared/ code may not.)
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseCase, runCase, type EpochOutput } from './index.ts';

const sharedDir =
  process.env['WEBTENSOR_SHARED'] ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared');
const vectors = JSON.parse(readFileSync(resolve(sharedDir, 'yuma/vectors.json'), 'utf8')) as RawCase[];

interface RawEpoch {
  expected?: Record<string, unknown> | null;
  expected_emulation: Record<string, unknown>;
}
interface RawCase extends RawEpoch {
  name: string;
  kind: string;
  epochs?: RawEpoch[];
  subcases?: { expected: unknown }[];
  tolerance?: { literal?: string };
}

const round10 = (x: number) => Number(x.toFixed(10));
const exactKeys = [
  'consensus_u16',
  'incentive_u16',
  'dividends_u16',
  'validator_trust_u16',
  'bonds_u16',
  'emission',
  'server_emission',
  'validator_emission',
  'new_validator_permit',
] as const;
const ratioKeys = ['consensus', 'incentive', 'dividends', 'validator_trust'] as const;

/** bigints in outputs compare against JSON numbers. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)));
}

function epochsOf(c: RawCase): RawEpoch[] {
  return c.epochs ?? [c];
}

/** The literal numbers from subtensor's own tests, checked with the tolerance that test used. */
function checkLiteral(expected: Record<string, unknown>, out: EpochOutput, yuma3: boolean) {
  const tol = yuma3 ? 1e-3 : 0;
  for (const [key, value] of Object.entries(expected)) {
    if (key === 'bonds_u16_at' || key === 'bonds_u16_log') {
      for (const [ij, v] of Object.entries(value as Record<string, number>)) {
        const [i, j] = ij.split(',').map(Number) as [number, number];
        expect(out.bonds_u16[i]![j], `${key} ${ij}`).toBe(v);
      }
    } else if (key === 'bonds_at') {
      for (const [ij, v] of Object.entries(value as Record<string, number>)) {
        const [i, j] = ij.split(',').map(Number) as [number, number];
        expect(Math.abs(out.bonds_u16[i]![j]! / 65535 - v), `bonds_at ${ij}`).toBeLessThanOrEqual(tol + 1e-12);
      }
    } else if (key === 'dividends_u16_at') {
      for (const [i, v] of Object.entries(value as Record<string, number>))
        expect(out.dividends_u16[Number(i)]).toBe(v);
    } else if (key === 'emission' || key === 'emission_log') {
      expect(plain(out.emission), key).toEqual(value);
    } else if (key === 'emission_at') {
      for (const [i, v] of Object.entries(value as Record<string, number>))
        expect(Number(out.emission[Number(i)])).toBe(v);
    } else if (key === 'dividends') {
      (value as number[]).forEach((v, i) => {
        expect(Math.abs(out.dividends_u16[i]! / 65535 - v), `dividends[${i}]`).toBeLessThanOrEqual(tol + 1e-12);
      });
    } else {
      throw new Error(`unhandled literal key ${key}`);
    }
  }
}

describe('public Yuma vectors', () => {
  it('has the 11 cases the spec describes', () => {
    expect(vectors).toHaveLength(11);
  });

  for (const raw of vectors) {
    describe(raw.name, () => {
      const parsed = parseCase(raw);
      if (parsed.kind === 'weighted_median' || parsed.kind === 'weighted_median_col') {
        it('returns the expected median for every subcase', () => {
          const out = runCase(parsed);
          expect('subcases' in out && out.subcases).toEqual(raw.subcases!.map((s) => s.expected));
        });
        return;
      }
      const yuma3 = parsed.params.yuma3_enabled;
      for (const replay of [false, true]) {
        it(`${replay ? 'replayed from its own bonds and permits' : 'each epoch from its given inputs'}: bit-exact`, () => {
          const out = runCase(parsed, { replay });
          if (!('epochs' in out)) throw new Error('expected epochs');
          const expected = epochsOf(raw);
          expect(out.epochs).toHaveLength(expected.length);
          out.epochs.forEach((epoch, k) => {
            const emu = expected[k]!.expected_emulation;
            for (const key of exactKeys) expect(plain(epoch[key]), `epoch ${k} ${key}`).toEqual(emu[key]);
            for (const key of ratioKeys) expect(epoch[key].map(round10), `epoch ${k} ${key}`).toEqual(emu[key]);
          });
        });
      }
      it('matches the literal numbers of the source test', () => {
        const out = runCase(parsed);
        if (!('epochs' in out)) throw new Error('expected epochs');
        epochsOf(raw).forEach((e, k) => {
          if (e.expected) checkLiteral(e.expected, out.epochs[k]!, yuma3);
        });
      });
    });
  }
});
