/**
 * The link to the relay: find its address (a multiaddr, or ask its /healthz), dial it until it answers, hold a
 * circuit relay reservation (so peers can reach this node through it), and dial again whenever it goes away.
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { z } from 'zod';
import { NodeError } from '../../shared/errors.ts';
import type { NodeConfig } from '../config.ts';
import type { Libp2pNode } from '../platform.ts';
import { Store, waitFor } from '../store.ts';
import { boundedBy } from './bounded.ts';

export interface RelayState {
  connected: boolean;
  reserved: boolean;
  address: string | null;
  reconnects: number;
  /** Why the link is not up, as a sentence; null when it is. */
  problem: string | null;
}

export interface RelayLinkComponents {
  libp2p: Libp2pNode;
}

/** How long one dial to the relay may take. */
const RELAY_DIAL_TIMEOUT_MS = 5000;

/** How long `redial` waits for libp2p to announce the old connection gone before it dials anyway. */
const REDIAL_FALLBACK_MS = 5000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The relay's multiaddr: given, or read from its /healthz (the WebSocket one preferred). */
export async function resolveRelay(relay: NodeConfig['relay']): Promise<Multiaddr> {
  let address: Multiaddr;
  if ('multiaddr' in relay) address = relay.multiaddr;
  else {
    let body: unknown;
    try {
      body = await (await fetch(relay.healthUrl)).json();
    } catch {
      throw new NodeError(
        'no-relay',
        `No relay answered at ${relay.healthUrl}. Start one with "npm run relay" (or "npm start"), or pass the relay's multiaddr.`,
      );
    }
    const parsed = z.object({ multiaddrs: z.array(z.string()).min(1) }).safeParse(body);
    if (!parsed.success)
      throw new NodeError('relay-address', `${relay.healthUrl} did not describe a relay (no multiaddrs).`);
    address = multiaddr(parsed.data.multiaddrs.find((m) => m.includes('/ws')) ?? parsed.data.multiaddrs[0]!);
  }
  if (!address.getComponents().some((c) => c.name === 'p2p'))
    throw new NodeError(
      'relay-address',
      'The relay address has no /p2p/<peer id>; use the full multiaddr from its /healthz.',
    );
  return address;
}

export class RelayLink {
  readonly state: Store<RelayState>;
  /** The relay's peer id. */
  readonly peer: string;
  private running = false;
  private connecting: Promise<void> | null = null;
  private readonly onDisconnect = (e: CustomEvent<{ toString(): string }>) => {
    if (!this.running || e.detail.toString() !== this.peer) return;
    const s = this.state.get();
    // (After `redial` the state already says so.)
    if (s.connected || s.reserved)
      this.state.update({ connected: false, reserved: false, reconnects: s.reconnects + 1 });
    this.connect();
  };

  constructor(
    private readonly components: RelayLinkComponents,
    readonly address: Multiaddr,
  ) {
    this.peer = [...address.getComponents()].reverse().find((c) => c.name === 'p2p')!.value!;
    this.state = new Store<RelayState>({
      connected: false,
      reserved: false,
      address: address.toString(),
      reconnects: 0,
      problem: null,
    });
  }

  start(): void {
    this.running = true;
    this.components.libp2p.addEventListener('peer:disconnect', this.onDisconnect);
    this.connect();
  }

  stop(): void {
    this.running = false;
    this.components.libp2p.removeEventListener('peer:disconnect', this.onDisconnect);
  }

  /**
   * Drop the connection to the relay and dial again: it is there but dead. libp2p can keep a connection whose
   * muxer has closed without announcing peer:disconnect; every stream to the relay then fails ("The connection
   * muxer is closed"), so this node neither gets peer lists nor is reachable, and it never reconnects by itself
   * (seen in scale.spec: two nodes cut off for the whole test). Whoever finds the relay dead calls this.
   */
  redial(why: string): void {
    if (!this.running) return;
    const s = this.state.get();
    this.state.update({ connected: false, reserved: false, reconnects: s.reconnects + 1, problem: why });
    const error = new Error(why);
    const connections = this.components.libp2p.getConnections(peerIdFromString(this.peer));
    for (const connection of connections) connection.abort(error);
    // Dial again only once libp2p has let go of the old connection (peer:disconnect, then `onDisconnect` dials).
    // A new connection opened while the old one still closes means no peer:disconnect: libp2p's circuit transport
    // drops the reservation with the old connection, but its relay topology never hears the relay come back, so it
    // never reserves again, while our circuit address lingers. The relay then answers NO_RESERVATION to everyone
    // dialling this node, and this node sits without peers (scale.spec, after redials). If the old connection
    // somehow does not close, dial anyway after a while.
    if (connections.length === 0) return this.connect();
    setTimeout(() => {
      if (this.running && !this.state.get().connected) this.connect();
    }, REDIAL_FALLBACK_MS);
  }

  /** Resolves once this node holds a reservation (now or after the next reconnect). */
  reserved(signal?: AbortSignal): Promise<unknown> {
    return waitFor(this.state, (s) => s.reserved, signal);
  }

  private connect(): void {
    this.connecting ??= this.connectLoop().finally(() => (this.connecting = null));
  }

  /** Dial until the relay answers, then wait for the reservation; on failure, hang up and go round again. */
  private async connectLoop(): Promise<void> {
    const libp2p = this.components.libp2p;
    let delay = 250;
    while (this.running) {
      try {
        // Bounded by a timer of our own too: a dial that ignores its signal would hold `connecting` for good, and
        // every later connect() would wait on it (scale.spec: a node left with no relay connection, no problem
        // reported since its redial, and no new dial).
        const signal = AbortSignal.timeout(RELAY_DIAL_TIMEOUT_MS);
        await boundedBy(libp2p.dial(this.address, { signal }), signal, 'the dial timed out');
      } catch (err) {
        // A connection libp2p still lists but cannot use (its muxer closed) fails every dial, and with no
        // reservation no peer-list request finds it out (scale.spec: a node stuck so for minutes): let it go.
        for (const connection of libp2p.getConnections(peerIdFromString(this.peer)))
          connection.abort(new Error(`dialling the relay failed (${(err as Error).message})`));
        this.state.update({
          problem: `The relay at ${this.address.toString()} does not answer (${(err as Error).message}); retrying.`,
        });
        await sleep(delay);
        delay = Math.min(2000, delay * 2);
        continue;
      }
      this.state.update({ connected: true });
      // The reservation is done when our circuit address through this relay appears (self:peer:update is debounced).
      const deadline = Date.now() + 15_000;
      while (this.running && Date.now() < deadline) {
        if (libp2p.getMultiaddrs().some((m) => m.toString().includes(`${this.peer}/p2p-circuit`))) {
          this.state.update({ reserved: true, problem: null });
          return;
        }
        await sleep(100);
      }
      this.state.update({
        problem: 'The relay accepted the connection but gave no reservation within 15 s; retrying.',
      });
      await libp2p.hangUp(peerIdFromString(this.peer)).catch(() => {});
    }
  }
}
