/**
 * Who forwards a challenge: never the miner, this validator or another validator; peers without a UID before
 * miners; none that failed a moment ago; drawn at random, so every qualifying peer carries checks.
 */
import { describe, expect, it } from 'vitest';
import type { LedgerSnapshot } from '../ledger/snapshot.ts';
import { rng } from '../yuma/synthetic.ts';
import { chooseForwarder, registeredKeys } from './forwarders.ts';

const slot = (hotkey: string, role: 'miner' | 'validator') => ({ hotkey, role });
// Only the UIDs matter here.
const keys = registeredKeys({
  subnets: [
    { netuid: 1, uids: [slot('miner-a', 'miner'), slot('self', 'validator'), slot('other-v', 'validator')] },
    { netuid: 2, uids: [slot('miner-b', 'miner'), slot('v-elsewhere', 'validator')] },
  ],
} as unknown as LedgerSnapshot);
const base = { target: 'miner-a', self: 'self', keys, random: rng(7) };

describe('chooseForwarder', () => {
  it('knows who holds a UID on any subnet, by role', () => {
    expect([...keys.validators].sort()).toEqual(['other-v', 'self', 'v-elsewhere']);
    expect([...keys.miners].sort()).toEqual(['miner-a', 'miner-b']);
    expect(registeredKeys(null)).toEqual({ validators: new Set(), miners: new Set() });
  });

  it('draws among peers without a UID, every one of them in time', () => {
    const connected = ['miner-a', 'self', 'other-v', 'v-elsewhere', 'miner-b', 'user-1', 'user-2', 'user-3'];
    const drawn = new Map<string, number>();
    for (let k = 0; k < 300; k++) {
      const f = chooseForwarder(connected, base)!;
      drawn.set(f, (drawn.get(f) ?? 0) + 1);
    }
    expect([...drawn.keys()].sort()).toEqual(['user-1', 'user-2', 'user-3']);
    for (const n of drawn.values()) expect(n).toBeGreaterThan(60);
  });

  it('falls back to other miners, never to validators, the target or itself; null when nobody is left', () => {
    expect(chooseForwarder(['miner-a', 'miner-b', 'other-v', 'self'], base)).toBe('miner-b');
    expect(chooseForwarder(['miner-a', 'other-v', 'v-elsewhere', 'self'], base)).toBeNull();
    expect(chooseForwarder([], base)).toBeNull();
  });

  it('leaves out the peers it is told to avoid', () => {
    const avoid = (p: string) => p === 'user-1';
    expect(chooseForwarder(['user-1', 'user-2'], { ...base, avoid })).toBe('user-2');
    expect(chooseForwarder(['user-1', 'miner-b'], { ...base, avoid })).toBe('miner-b');
    expect(chooseForwarder(['user-1'], { ...base, avoid })).toBeNull();
  });

  it('stays in range when the random source returns its upper bound', () => {
    expect(chooseForwarder(['user-1', 'user-2'], { ...base, random: () => 0.9999999999999999 })).toBe('user-2');
  });
});
