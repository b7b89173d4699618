/**
 * Bit-exact emulation of the substrate-fixed types subtensor uses in the epoch.
 *
 * A value is carried as its raw bits in a bigint: I32F32 bits = value * 2^32, I64F64 bits = value * 2^64.
 * The rules (SPEC §2): multiply takes the full product and shifts right (floor, toward -inf); divide is
 * (a << frac) / b in integers (truncation toward zero); `safeDiv` returns 0 on divide-by-zero or overflow;
 * narrowing conversions drop low bits; everything saturates at the type's bounds.
 */

export type Fixed = bigint;

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const I128_MIN = -(1n << 127n);
const I128_MAX = (1n << 127n) - 1n;

export const FRAC32 = 32n;
export const ONE = 1n << FRAC32;
export const ZERO = 0n;
export const HALF = 1n << 31n;
export const U16_MAX = 65535n;
/** 65535 as I32F32. */
export const U16_MAX_FIXED = U16_MAX << FRAC32;

function saturate64(bits: bigint): bigint {
  return bits < I64_MIN ? I64_MIN : bits > I64_MAX ? I64_MAX : bits;
}

function saturate128(bits: bigint): bigint {
  return bits < I128_MIN ? I128_MIN : bits > I128_MAX ? I128_MAX : bits;
}

function inI64(bits: bigint): boolean {
  return bits >= I64_MIN && bits <= I64_MAX;
}

// ---------------------------------------------------------------- I32F32

/** Integer to I32F32 (exact, saturating). */
export function fromInt(n: number | bigint): Fixed {
  return saturate64(BigInt(n) << FRAC32);
}

/** `saturating_add`. */
export function add(a: Fixed, b: Fixed): Fixed {
  return saturate64(a + b);
}

/** `saturating_sub`. */
export function sub(a: Fixed, b: Fixed): Fixed {
  return saturate64(a - b);
}

/** `saturating_mul`: full product, arithmetic shift right (floor). */
export function mul(a: Fixed, b: Fixed): Fixed {
  return saturate64((a * b) >> FRAC32);
}

/** `checked_mul`: undefined on overflow. */
export function checkedMul(a: Fixed, b: Fixed): Fixed | undefined {
  const r = (a * b) >> FRAC32;
  return inI64(r) ? r : undefined;
}

/** `checked_div`: (a << 32) / b truncated toward zero; undefined on /0 or overflow. */
export function checkedDiv(a: Fixed, b: Fixed): Fixed | undefined {
  if (b === 0n) return undefined;
  const q = (a << FRAC32) / b;
  return inI64(q) ? q : undefined;
}

/** subtensor's `safe_div`: 0 on divide-by-zero or overflow. */
export function safeDiv(a: Fixed, b: Fixed): Fixed {
  return checkedDiv(a, b) ?? 0n;
}

/** `saturating_div`: saturates on overflow; divide-by-zero saturates by the sign of a (fixed's rule). */
export function saturatingDiv(a: Fixed, b: Fixed): Fixed {
  if (b === 0n) return a === 0n ? 0n : a > 0n ? I64_MAX : I64_MIN;
  return saturate64((a << FRAC32) / b);
}

export function min(a: Fixed, b: Fixed): Fixed {
  return a < b ? a : b;
}

export function max(a: Fixed, b: Fixed): Fixed {
  return a > b ? a : b;
}

/** clamp_value: min(high) then max(low), the order subtensor uses. */
export function clamp(x: Fixed, low: Fixed, high: Fixed): Fixed {
  return max(min(x, high), low);
}

/** `round()`: to nearest, half away from zero. */
export function round(x: Fixed): Fixed {
  const frac = ONE - 1n;
  if (x >= 0n) return saturate64((x + HALF) & ~frac);
  return -((-x + HALF) & ~frac);
}

/** Fixed -> integer: drop the fraction (floor), then saturate into [lo, hi]. */
export function toInt(x: Fixed, lo: bigint, hi: bigint): bigint {
  const v = x >> FRAC32;
  return v < lo ? lo : v > hi ? hi : v;
}

/** `saturating_to_num::<u16>()`. */
export function toU16(x: Fixed): number {
  return Number(toInt(x, 0n, U16_MAX));
}

/** `u16_proportion_to_fixed`: u / 65535 as an I32F32 divide. */
export function u16Proportion(u: number): Fixed {
  return safeDiv(fromInt(u), U16_MAX_FIXED);
}

/** `fixed_proportion_to_u16`: floor(x * 65535) saturated into u16. */
export function proportionToU16(x: Fixed): number {
  return toU16(mul(x, U16_MAX_FIXED));
}

/** Value as a JS number (exact for |value| < 2^21). For display and comparisons with float references. */
export function toNumber(x: Fixed): number {
  return Number(x) / 4294967296;
}

/**
 * Float to I32F32, rounding to nearest with ties to even (the `from_num(f64)` rule).
 * `f32: true` first rounds the number to single precision, as subtensor's `fixed(f32)` test helper does.
 */
export function fromFloat(value: number, opts: { f32?: boolean } = {}): Fixed {
  if (!Number.isFinite(value)) throw new RangeError(`cannot convert ${value} to fixed point`);
  const v = opts.f32 ? Math.fround(value) : value;
  // v * 2^32 is exact in binary floating point; split into integer and fractional parts exactly.
  const scaled = v * 4294967296;
  const floor = Math.floor(scaled);
  const frac = scaled - floor; // exact: both are doubles of the same binade or smaller
  let bits = BigInt(floor);
  if (frac > 0.5 || (frac === 0.5 && bits % 2n !== 0n)) bits += 1n;
  return saturate64(bits);
}

// ---------------------------------------------------------------- I64F64

export const FRAC64 = 64n;

/** Integer to I64F64. */
export function fromInt64(n: bigint): bigint {
  return saturate128(n << FRAC64);
}

/** I64F64 `safe_div`. */
export function safeDiv64(a: bigint, b: bigint): bigint {
  if (b === 0n) return 0n;
  const q = (a << FRAC64) / b;
  return q >= I128_MIN && q <= I128_MAX ? q : 0n;
}

/** I64F64 -> I32F32 (`saturating_from_num`): drop the low 32 fraction bits. */
export function fixed64To32(x: bigint): Fixed {
  return saturate64(x >> 32n);
}

/** I64F64 -> u64 (`saturating_to_num::<u64>`). */
export function fixed64ToU64(x: bigint): bigint {
  const v = x >> FRAC64;
  return v < 0n ? 0n : v > (1n << 64n) - 1n ? (1n << 64n) - 1n : v;
}

// ---------------------------------------------------------------- I96F32 (rao conversion)

const U64_MAX = (1n << 64n) - 1n;

/** `I96F32(ratio) * rao`, then `saturating_to_num::<u64>()`: floor(ratio * rao). */
export function ratioTimesRao(ratio: Fixed, rao: bigint): bigint {
  const v = (ratio * rao) >> FRAC32;
  return v < 0n ? 0n : v > U64_MAX ? U64_MAX : v;
}

// ---------------------------------------------------------------- exp

/** e as substrate-fixed stores it: I9F23, i.e. floor(e * 2^23), taken from its U2F126 constant. */
const E_I9F23 = 0xadf85458a2bb4a9aafdc5620273d3cf1n >> 103n;
const E_FIXED: Fixed = E_I9F23 << 9n;

/**
 * `substrate_fixed::transcendental::exp` for I32F32: Taylor series 1 + x + sum_{i=2}^{31} x^i/i!, each term
 * floored/truncated as it is built; exp(-x) = 1/exp(x). Returns undefined where the crate returns Err.
 */
export function exp(x: Fixed): Fixed | undefined {
  if (x === 0n) return ONE;
  if (x === ONE) return E_FIXED;
  const neg = x < 0n;
  const operand = neg ? -x : x;
  let result = add(operand, ONE);
  let term = operand;
  for (let i = 2n; i < FRAC32; i++) {
    const product = checkedMul(term, operand);
    if (product === undefined) return undefined;
    const divided = checkedDiv(product, i << FRAC32);
    if (divided === undefined) return undefined;
    term = divided;
    const sum = result + term;
    if (!inI64(sum)) return undefined;
    result = sum;
  }
  if (neg) return checkedDiv(ONE, result);
  return result;
}

const EXP_LIMIT = 20n << FRAC32;

/** subtensor's `exp_safe`: input clamped to [-20, 20]; errors map to 0 (non-positive input) or max. */
export function expSafe(x: Fixed): Fixed {
  const safe = x < -EXP_LIMIT ? -EXP_LIMIT : x > EXP_LIMIT ? EXP_LIMIT : x;
  const r = exp(safe);
  if (r !== undefined) return r;
  return safe <= 0n ? 0n : I64_MAX;
}
