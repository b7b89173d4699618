/**
 * Amounts people type: τ as a decimal with at most 9 places (1 τ = 10⁹ rao), parsed to rao exactly (never through
 * a float). Whatever is wrong gets one sentence naming it, and no amount.
 */
export const RAO_PER_TAO = 1_000_000_000n;

export class AmountError extends Error {
  override name = 'AmountError';
}

/** `text` in τ ("1.5", "0.000000001", "2000") as rao; throws AmountError naming what is wrong. */
export function parseTao(text: string): bigint {
  const t = text.trim();
  if (t === '') throw new AmountError('Enter an amount of τ.');
  if (t.startsWith('-')) throw new AmountError(`The amount must be positive, not ${t}.`);
  const m = /^(\d+)(?:\.(\d*))?$|^\.(\d+)$/.exec(t);
  if (!m)
    throw new AmountError(`"${t.slice(0, 40)}" is not an amount of τ: write digits and at most one point, like 1.5.`);
  const whole = m[1] ?? '0';
  const fraction = m[2] ?? m[3] ?? '';
  if (fraction.length > 9)
    throw new AmountError(`τ has at most 9 decimals (1 rao = 0.000000001 τ); ${t} has ${fraction.length}.`);
  if (whole.length > 20) throw new AmountError(`${t.slice(0, 40)} τ is more than could ever exist.`);
  const value = BigInt(whole) * RAO_PER_TAO + BigInt(fraction.padEnd(9, '0') || '0');
  if (value === 0n) throw new AmountError('The amount must be more than zero.');
  return value;
}

/** Rao as τ, exact, with no unit and no separators ("1.5", "0.000000001"): what parseTao reads back. */
export function taoText(rao: bigint): string {
  const sign = rao < 0n ? '-' : '';
  const abs = rao < 0n ? -rao : rao;
  const fraction = (abs % RAO_PER_TAO).toString().padStart(9, '0').replace(/0+$/, '');
  return `${sign}${abs / RAO_PER_TAO}${fraction ? `.${fraction}` : ''}`;
}
