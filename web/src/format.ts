/** How the pages write numbers and ids: one place, so every page writes them alike. */

/** A peer id shortened for tables: its first 8 and last 4 characters. */
export const shortId = (id: string) => `${id.slice(0, 8)}…${id.slice(-4)}`;

import { RAO_PER_TAO } from '../../shared/ledger/amounts.ts';

export { RAO_PER_TAO };

/** Rao (a bigint or its decimal string) as a float number of τ, for charts only (never for amounts shown). */
export const units = (rao: string | bigint) => Number(BigInt(rao)) / 1e9;

/**
 * Rao as τ with the unit, exact: the integer part with thousands separators and up to `digits` decimals, cut
 * (not rounded) so a balance is never shown larger than it is. `tao(16400100000n)` is "16.4001 τ".
 */
export function tao(rao: string | bigint, digits = 4): string {
  const value = BigInt(rao);
  const sign = value < 0n ? '-' : '';
  const abs = value < 0n ? -value : value;
  const whole = (abs / RAO_PER_TAO).toLocaleString('en-US');
  const fraction = (abs % RAO_PER_TAO).toString().padStart(9, '0').slice(0, digits).replace(/0+$/, '');
  return `${sign}${whole}${fraction ? `.${fraction}` : ''} τ`;
}

/** Rao exactly, with the unit: where exactness matters (tooltips, emission totals). */
export const rao = (value: string | bigint) => `${BigInt(value).toLocaleString('en-US')} rao`;

/** A u16 proportion (0-65535) as a number from 0 to 1. */
export const u16Ratio = (v: number) => v / 65535;
