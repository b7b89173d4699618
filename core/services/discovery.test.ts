/** Which relayed connections Discovery closes as spent (the live behaviour is in core/node.test.ts, NAT test). */
import { describe, expect, it } from 'vitest';
import { SPENT_CIRCUIT_MS, spentCircuits } from './discovery.ts';

const now = 1_000_000;
const connection = (over: { limited?: boolean; status?: 'open' | 'closing'; streams?: number; ageMs?: number }) => ({
  limits: over.limited === false ? undefined : { seconds: 120 },
  status: over.status ?? ('open' as const),
  streams: Array.from({ length: over.streams ?? 0 }) as never[],
  timeline: { open: now - (over.ageMs ?? SPENT_CIRCUIT_MS) },
});

describe('spentCircuits', () => {
  it('picks open relayed connections with no stream that are older than a dial may take', () => {
    const spent = connection({});
    expect(spentCircuits([spent], now)).toEqual([spent]);
  });

  it('keeps direct connections, circuits still signalling, young circuits and ones already closing', () => {
    const kept = [
      connection({ limited: false }),
      connection({ streams: 1 }),
      connection({ ageMs: SPENT_CIRCUIT_MS - 1 }),
      connection({ status: 'closing' }),
    ];
    expect(spentCircuits(kept, now)).toEqual([]);
  });
});
