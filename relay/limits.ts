/**
 * Per-IP and per-peer limits on the relay, so that one machine with many identities can neither take every
 * reservation (the peer list samples reservation holders: owning them eclipses tabs) nor flood the relay:
 *
 * - reservations per IP (`--max-reservations-per-ip`): libp2p's relay server asks the connection gater
 *   (`denyInboundRelayReservation`) before it reserves; the gater counts the reservation holders still connected
 *   from the asker's IP. A reservation is dropped when its holder disconnects (libp2p would keep it for its 2 h
 *   TTL, and identities that connect, reserve and leave would fill the relay's `--max-reservations` for good);
 * - connections per IP (`--max-connections-per-ip`) and new connections per IP per minute
 *   (`--connection-rate-per-ip`): the gater's `denyInboundConnection`, asked for every raw inbound connection
 *   before its handshake, counts the connections open (handshaking or upgraded) from that IP;
 * - peer-list requests per peer per minute (`--peer-list-rate`): checked by the peer list's handler.
 *
 * IPv6 addresses are counted by their /64 (one host usually holds a whole /64). Loopback counts like any other
 * address: tests that run many nodes on one machine start the relay with high limits (testing/loopback-limits.ts).
 * Every refusal is logged at debug level (RELAY_LOG_LEVEL=debug) and counted by reason in /metrics.
 */
import type { ConnectionGater, MultiaddrConnection, PeerId } from '@libp2p/interface';
import { RateLimiter, tryGetNetConfig } from '@libp2p/utils';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { RelayConfig } from './config.ts';
import { log } from './log.ts';
import type { RelayNode } from './node.ts';

export const REFUSAL_REASONS = [
  'reservations-per-ip',
  'reservations-full',
  'connections-per-ip',
  'connection-rate-per-ip',
  'peer-list-rate',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export type RelayLimitsConfig = Pick<
  RelayConfig,
  'maxReservations' | 'maxReservationsPerIp' | 'maxConnectionsPerIp' | 'connectionRatePerIp' | 'peerListRate'
>;

/** The key an address is counted under: its IPv4 address, or its IPv6 /64; null when it has no IP. */
export function ipKey(addr: Multiaddr): string | null {
  const net = tryGetNetConfig(addr);
  if (net?.type === 'ip4') return net.host;
  if (net?.type !== 'ip6') return null;
  const groups = expandIp6(net.host.toLowerCase().split('%')[0]!);
  // An IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 address.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff)
    return [groups[6]! >> 8, groups[6]! & 255, groups[7]! >> 8, groups[7]! & 255].join('.');
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address ("::" expanded, a trailing dotted quad turned into two groups). */
function expandIp6(host: string): number[] {
  const quad = host.match(/^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  const text = quad
    ? `${quad[1]}${((Number(quad[2]) << 8) | Number(quad[3])).toString(16)}:${((Number(quad[4]) << 8) | Number(quad[5])).toString(16)}`
    : host;
  const [head = '', tail] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0');
  return [...left, ...zeros, ...right].map((g) => Number.parseInt(g || '0', 16));
}

export class RelayLimits {
  /** Refusals since start, by reason. */
  readonly refused: Record<RefusalReason, number> = Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<
    RefusalReason,
    number
  >;
  /** Raw inbound connections open now (handshaking or upgraded), by IP key. */
  private readonly open = new Map<string, Set<MultiaddrConnection>>();
  private readonly connectionRate: RateLimiter;
  private readonly peerListRate: RateLimiter;
  private node: RelayNode | null = null;

  constructor(private readonly config: RelayLimitsConfig) {
    this.connectionRate = new RateLimiter({ points: config.connectionRatePerIp, duration: 60, keyPrefix: 'conn' });
    this.peerListRate = new RateLimiter({ points: config.peerListRate, duration: 60, keyPrefix: 'peers' });
  }

  /** The gater handed to libp2p; it needs the node (attach) to look up connections and reservations. */
  readonly gater: ConnectionGater = {
    denyInboundConnection: (maConn) => this.denyConnection(maConn),
    denyInboundRelayReservation: (peer) => this.denyReservation(peer),
  };

  /** Bind to the node the gater guards, and drop each reservation whose holder disconnects. */
  attach(node: RelayNode): void {
    this.node = node;
    node.addEventListener('peer:disconnect', (e) => {
      const reservation = node.services.relay.reservations.get(e.detail);
      if (!reservation) return;
      reservation.signal.clear();
      node.services.relay.reservations.delete(e.detail);
    });
  }

  /** Whether `peer` may ask for the peer list now (counts a refusal if not). */
  allowPeerList(peer: PeerId): boolean {
    try {
      this.peerListRate.consume(peer.toString());
      return true;
    } catch {
      this.refuse('peer-list-rate', { peer: peer.toString(), limitPerMinute: this.config.peerListRate });
      return false;
    }
  }

  private refuse(reason: RefusalReason, fields: Record<string, unknown>): true {
    this.refused[reason]++;
    log.debug('refused', { reason, ...fields });
    return true;
  }

  private denyConnection(maConn: MultiaddrConnection): boolean {
    const key = ipKey(maConn.remoteAddr);
    if (key === null) return false;
    const open = this.open.get(key) ?? new Set<MultiaddrConnection>();
    if (open.size >= this.config.maxConnectionsPerIp)
      return this.refuse('connections-per-ip', { ip: key, open: open.size, limit: this.config.maxConnectionsPerIp });
    try {
      this.connectionRate.consume(key);
    } catch {
      return this.refuse('connection-rate-per-ip', { ip: key, limitPerMinute: this.config.connectionRatePerIp });
    }
    open.add(maConn);
    this.open.set(key, open);
    maConn.addEventListener(
      'close',
      () => {
        open.delete(maConn);
        if (open.size === 0 && this.open.get(key) === open) this.open.delete(key);
      },
      { once: true },
    );
    return false;
  }

  private denyReservation(peer: PeerId): boolean {
    const node = this.node;
    if (!node) return false;
    const reservations = node.services.relay.reservations;
    if (reservations.has(peer)) return false; // a refresh keeps the slot it holds
    if (reservations.size >= this.config.maxReservations) {
      // libp2p's own store refuses it (RESERVATION_REFUSED); counted here, where it can be.
      this.refuse('reservations-full', { peer: peer.toString(), limit: this.config.maxReservations });
      return false;
    }
    const ipsOf = (p: PeerId) =>
      new Set(
        node
          .getConnections(p)
          .map((c) => ipKey(c.remoteAddr))
          .filter((k) => k !== null),
      );
    const ips = ipsOf(peer);
    if (ips.size === 0) return false;
    const held = new Map<string, number>();
    for (const holder of reservations.keys())
      for (const ip of ipsOf(holder)) if (ips.has(ip)) held.set(ip, (held.get(ip) ?? 0) + 1);
    for (const ip of ips) {
      const count = held.get(ip) ?? 0;
      if (count >= this.config.maxReservationsPerIp)
        return this.refuse('reservations-per-ip', {
          peer: peer.toString(),
          ip,
          held: count,
          limit: this.config.maxReservationsPerIp,
        });
    }
    return false;
  }
}
