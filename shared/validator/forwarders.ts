/**
 * Which peer forwards a challenge (docs/validator.md, "Forwarded challenges"). A challenge sent from the
 * validator's own key is recognisable (validators are public), so a validator asks a peer it is connected to to
 * send it from that peer's key instead (`/webtensor/forward/1`, core/services/forward.ts). The peer is drawn at
 * random, so a miner cannot know in advance which peers carry checks, and a forwarder colluding with a miner is
 * rarely the one drawn.
 *
 * Who may forward: never the miner challenged, this validator, or a registered validator (a request from a
 * validator's key is as recognisable as a direct challenge). Peers that hold no UID come first, like the users they
 * stand in for; registered miners only when no such peer is connected (a miner rarely asks another as a user, so
 * a request from a miner's key is a weaker disguise, but still no worse than a direct challenge). Peers whose
 * forwarding failed a moment ago are left out for a while (`avoid`).
 */
import type { LedgerSnapshot } from '../ledger/snapshot.ts';
import type { Random } from './challenges.ts';

/** The keys that hold a UID on any subnet, by role. */
export interface RegisteredKeys {
  validators: ReadonlySet<string>;
  miners: ReadonlySet<string>;
}

export function registeredKeys(snapshot: LedgerSnapshot | null): RegisteredKeys {
  const validators = new Set<string>();
  const miners = new Set<string>();
  for (const sub of snapshot?.subnets ?? [])
    for (const u of sub.uids) (u.role === 'validator' ? validators : miners).add(u.hotkey);
  return { validators, miners };
}

/**
 * A forwarder for a challenge to `target`, drawn at random among `connected` (see above for who qualifies and in
 * which order), or null when none qualifies (the validator then challenges directly).
 */
export function chooseForwarder(
  connected: readonly string[],
  options: {
    target: string;
    self: string;
    keys: RegisteredKeys;
    /** Peers not to use now (their forwarding failed recently). */
    avoid?: (peer: string) => boolean;
    random: Random;
  },
): string | null {
  const { target, self, keys, avoid, random } = options;
  const usable = [...new Set(connected)].filter(
    (p) => p !== target && p !== self && !keys.validators.has(p) && !(avoid?.(p) ?? false),
  );
  const plain = usable.filter((p) => !keys.miners.has(p));
  const pool = plain.length > 0 ? plain : usable;
  if (pool.length === 0) return null;
  return pool[Math.min(pool.length - 1, Math.floor(random() * pool.length))]!;
}
