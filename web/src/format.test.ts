import { describe, expect, it } from 'vitest';
import { rao, tao } from './format.ts';

describe('amounts on the pages', () => {
  it('writes τ exactly, cut not rounded, with the unit', () => {
    expect(tao(16_400_100_000n)).toBe('16.4001 τ');
    expect(tao('999999999')).toBe('0.9999 τ');
    expect(tao(0n)).toBe('0 τ');
    expect(tao(1_000_000_000_000n)).toBe('1,000 τ');
    expect(tao(-1_500_000_000n)).toBe('-1.5 τ');
    // u64 max stays exact in its integer part.
    expect(tao(18_446_744_073_709_551_615n)).toBe('18,446,744,073.7095 τ');
  });

  it('writes rao with separators', () => {
    expect(rao('20000000000')).toBe('20,000,000,000 rao');
  });
});
