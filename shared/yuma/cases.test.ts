/**
 * The case parser keeps integers exact: u64 stakes and rao amounts read from JSON text keep every digit up to
 * u64::MAX, are refused above it naming the field, and come out of the engine and `toJson` as exact integers.
 */
import { describe, expect, it } from 'vitest';
import { CaseFormatError, parseCase, parseJsonExact, runCase, toJson, U64_MAX } from './index.ts';
import { thresholdCase } from './testing.ts';

const U64_MAX_TEXT = '18446744073709551615';
const TWO_53_PLUS_1 = '9007199254740993';

function formatError(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    if (err instanceof CaseFormatError) return err.message;
    throw err;
  }
  throw new Error('expected a CaseFormatError');
}

describe('parseJsonExact', () => {
  it('turns integer literals beyond 2^53 into exact bigints and leaves every other number as JSON.parse does', () => {
    const text = `[${U64_MAX_TEXT}, ${TWO_53_PLUS_1}, 9007199254740992, -9007199254740993, 9007199254740991, 65535,
      0.7, 1e3, -0, 1.5e300, 123456789012345678901234567890]`;
    expect(parseJsonExact(text)).toEqual([
      U64_MAX,
      9007199254740993n,
      9007199254740992n,
      -9007199254740993n,
      9007199254740991,
      65535,
      0.7,
      1000,
      -0,
      1.5e300,
      123456789012345678901234567890n,
    ]);
    expect(U64_MAX).toBe(2n ** 64n - 1n);
  });

  it('is JSON.parse for everything without big integers', () => {
    const text = '{"a": [1, 2.5, "x", null, true, {"b": -3e-7}], "c": "\\u00e9"}';
    expect(parseJsonExact(text)).toEqual(JSON.parse(text));
  });

  it('refuses text that is not JSON', () => {
    expect(() => parseJsonExact('{"kind": ')).toThrow(SyntaxError);
  });
});

describe('u64 stakes and rao amounts', () => {
  it('keeps u64 max exact from the text through the engine to the printed output', () => {
    const parsed = parseCase(parseJsonExact(thresholdCase(U64_MAX_TEXT, '18446744073709551614', U64_MAX_TEXT)));
    if (parsed.kind !== 'epoch') throw new Error('expected an epoch case');
    expect(parsed.stake).toEqual([U64_MAX, U64_MAX - 1n, 0n]);
    expect(parsed.params.stake_threshold).toBe(U64_MAX);
    expect(parsed.params.rao_emission).toBe(U64_MAX);
    const out = runCase(parsed);
    if (!('epochs' in out)) throw new Error('expected epochs');
    const epoch = out.epochs[0]!;
    // One rao below the threshold is below it: validator 1 has no stake, so no dividends and no permit.
    expect(epoch.dividends_u16).toEqual([65535, 0, 0]);
    expect(epoch.new_validator_permit).toEqual([true, false, false]);
    // Half of u64::MAX each, floored: digits a float cannot hold.
    expect(epoch.emission).toEqual([9223372036854775807n, 0n, 9223372036854775807n]);
    const json = toJson(out);
    expect(json).toContain('"emission":[9223372036854775807,0,9223372036854775807]');
    expect(json).toContain('"server_emission":[0,0,9223372036854775807]');
    expect(json).toContain('"validator_emission":[9223372036854775807,0,0]');
  });

  it('keeps 2^53 + 1 exact: a stake one rao above 2^53 is not the same as 2^53', () => {
    const text = thresholdCase(TWO_53_PLUS_1, '9007199254740992', '9007199254740995');
    const parsed = parseCase(parseJsonExact(text));
    if (parsed.kind !== 'epoch') throw new Error('expected an epoch case');
    expect(parsed.stake).toEqual([9007199254740993n, 9007199254740992n, 0n]);
    expect(parsed.params.stake_threshold).toBe(9007199254740993n);
    const json = toJson(runCase(parsed));
    expect(json).toContain('"dividends_u16":[65535,0,0]');
    expect(json).toContain('"emission":[4503599627370497,0,4503599627370497]');
  });

  it('accepts the same amounts as digit strings or bigints', () => {
    const asText = parseCase(parseJsonExact(thresholdCase(U64_MAX_TEXT, '18446744073709551614', U64_MAX_TEXT)));
    const asStrings = parseCase(
      parseJsonExact(thresholdCase(`"${U64_MAX_TEXT}"`, '"18446744073709551614"', `"${U64_MAX_TEXT}"`)),
    );
    expect(toJson(runCase(asStrings))).toBe(toJson(runCase(asText)));
    const asBigints = { ...(parseJsonExact(thresholdCase('1', '0', '1')) as object), stake: [U64_MAX, 1n, 0n] };
    const parsed = parseCase(asBigints);
    expect(parsed.kind === 'epoch' && parsed.stake).toEqual([U64_MAX, 1n, 0n]);
  });

  it('refuses u64 max + 1 naming the field', () => {
    const over = '18446744073709551616';
    const bound = `Too big: expected a u64 (at most ${U64_MAX_TEXT}), got ${over}`;
    expect(formatError(() => parseCase(parseJsonExact(thresholdCase('0', over, '1'))))).toBe(`stake[1]: ${bound}`);
    expect(formatError(() => parseCase(parseJsonExact(thresholdCase('0', '0', over))))).toBe(
      `params.rao_emission: ${bound}`,
    );
    expect(formatError(() => parseCase(parseJsonExact(thresholdCase(`"${over}"`, '0', '1'))))).toBe(
      `params.stake_threshold: ${bound}`,
    );
    const sequence = JSON.parse(thresholdCase('0', '0', '1')) as Record<string, unknown>;
    const epoch = { ...sequence, stake: [0, 0, 0] };
    for (const key of ['name', 'kind', 'params', 'n']) delete (epoch as Record<string, unknown>)[key];
    const text = toJson({
      ...sequence,
      kind: 'epoch_sequence',
      epochs: [epoch, { ...epoch, stake: [0, 0, 2n ** 64n] }],
    });
    expect(formatError(() => parseCase(parseJsonExact(text)))).toBe(`epochs[1].stake[2]: ${bound}`);
  });

  it('refuses negative, fractional and malformed amounts naming the field', () => {
    expect(formatError(() => parseCase(parseJsonExact(thresholdCase('0', '-1', '1'))))).toBe(
      'stake[1]: Too small: expected a u64 (at least 0), got -1',
    );
    expect(formatError(() => parseCase(parseJsonExact(thresholdCase('0', '1.5', '1'))))).toBe(
      'stake[1]: expected an integer amount, got 1.5',
    );
    expect(formatError(() => parseCase(parseJsonExact(thresholdCase('0', '"12a"', '1'))))).toBe(
      'stake[1]: expected a non-negative integer string',
    );
    expect(formatError(() => parseCase(parseJsonExact(thresholdCase('0', 'null', '1'))))).toMatch(
      /^stake\[1\]: expected a u64 amount .*received null$/,
    );
  });

  it('refuses a float beyond 2^53 instead of rounding it silently (plain JSON.parse input)', () => {
    const lossy = JSON.parse(thresholdCase(TWO_53_PLUS_1, '9007199254740992', '1')) as unknown;
    expect(formatError(() => parseCase(lossy))).toBe(
      'params.stake_threshold: 9007199254740992 is beyond 2^53, where a float is not an exact integer; write its digits (or a digit string)',
    );
    // An exponent literal is a float too, whatever parser reads it.
    expect(formatError(() => parseCase(parseJsonExact(thresholdCase('0', '1e19', '1'))))).toMatch(
      /^stake\[1\]: 10000000000000000000 is beyond 2\^53/,
    );
  });

  it('refuses a huge integer in a u16 or block field with the usual range message', () => {
    const text = thresholdCase('0', '0', '1').replace('"current_block": 1000', `"current_block": ${U64_MAX_TEXT}`);
    expect(formatError(() => parseCase(parseJsonExact(text)))).toBe(
      'current_block: Too big: expected number to be <=9007199254740991',
    );
    const weights = thresholdCase('0', '0', '1').replace('[[0, 0, 65535]', `[[0, 0, ${U64_MAX_TEXT}]`);
    expect(formatError(() => parseCase(parseJsonExact(weights)))).toBe(
      'weights[0][2]: Too big: expected number to be <=65535',
    );
    const steepness = thresholdCase('0', '0', '1').replace('1000, "max', '-9223372036854775808, "max');
    expect(formatError(() => parseCase(parseJsonExact(steepness)))).toBe(
      'params.alpha_sigmoid_steepness: Too small: expected number to be >=-32768',
    );
  });
});

describe('ratios', () => {
  it('print as the number they were given, also when the file holds big integers elsewhere', () => {
    const text = `{"name": "m", "kind": "weighted_median", "subcases": [
      {"stake": [${U64_MAX_TEXT}, 0.3], "score": [0.7, 0.1], "kappa": 0.5},
      {"stake": [0.2, 0.3, 0.5], "score": [0.6, 0.7, 0.1], "kappa": 0.5}]}`;
    const out = runCase(parseCase(parseJsonExact(text)));
    expect(out).toEqual({ name: 'm', subcases: [0.7, 0.6] });
    expect(toJson(out)).toBe('{"name":"m","subcases":[0.7,0.6]}');
  });
});
