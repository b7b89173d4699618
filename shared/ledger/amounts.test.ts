/** Typed τ amounts: exact to the rao, every bad input refused with a sentence naming it. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AmountError, parseTao, taoText } from './amounts.ts';

describe('τ amounts', () => {
  it('parses τ to rao exactly', () => {
    expect(parseTao('1')).toBe(1_000_000_000n);
    expect(parseTao('1.5')).toBe(1_500_000_000n);
    expect(parseTao(' 0.000000001 ')).toBe(1n);
    expect(parseTao('.25')).toBe(250_000_000n);
    expect(parseTao('2.')).toBe(2_000_000_000n);
    expect(parseTao('123456789.123456789')).toBe(123_456_789_123_456_789n);
  });

  it('refuses what is not a positive amount with at most 9 decimals, naming the problem', () => {
    const cases: [string, RegExp][] = [
      ['', /Enter an amount/],
      ['   ', /Enter an amount/],
      ['-1', /must be positive/],
      ['0', /more than zero/],
      ['0.000000000', /more than zero/],
      ['1.0000000001', /at most 9 decimals/],
      ['abc', /not an amount/],
      ['1e3', /not an amount/],
      ['1,000', /not an amount/],
      ['1.2.3', /not an amount/],
      ['+1', /not an amount/],
      ['NaN', /not an amount/],
      ['Infinity', /not an amount/],
      ['0x10', /not an amount/],
      ['1'.repeat(21), /more than could ever exist/],
    ];
    for (const [text, message] of cases) {
      expect(() => parseTao(text), JSON.stringify(text)).toThrow(AmountError);
      expect(() => parseTao(text), JSON.stringify(text)).toThrow(message);
    }
  });

  it('writes rao back as τ that parses to the same rao', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 10n ** 27n }), (rao) => {
        expect(parseTao(taoText(rao))).toBe(rao);
      }),
    );
    expect(taoText(1_500_000_000n)).toBe('1.5');
    expect(taoText(1n)).toBe('0.000000001');
    expect(taoText(0n)).toBe('0');
  });
});
