/** How the pages write numbers and ids: one place, so every page writes them alike. */

/** A peer id shortened for tables: its first 8 and last 4 characters. */
export const shortId = (id: string) => `${id.slice(0, 8)}…${id.slice(-4)}`;

/** Rao (a bigint or its decimal string) as whole units (1 unit = 1e9 rao). */
export const units = (rao: string | bigint) => Number(BigInt(rao)) / 1e9;

/** A u16 proportion (0-65535) as a number from 0 to 1. */
export const u16Ratio = (v: number) => v / 65535;
