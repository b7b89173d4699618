/**
 * The relay's per-IP and per-peer limits under attack: a real relay process, real libp2p peers (many identities
 * from one machine), raw WebSocket floods and a peer-list flood. Everything runs on loopback; a second address,
 * 127.0.0.2 (Linux routes all of 127/8 to loopback), stands for another machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { identify } from '@libp2p/identify';
import type { Libp2p } from '@libp2p/interface';
import { noise } from '@libp2p/noise';
import { peerIdFromString } from '@libp2p/peer-id';
import { lpStream } from '@libp2p/utils';
import { webSockets } from '@libp2p/websockets';
import { yamux } from '@libp2p/yamux';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { PROTOCOLS } from '../shared/names.ts';
import { decodeFrame, MAX_FRAME_BYTES, peerListSchema } from '../shared/p2p/messages.ts';
import { parseRelayConfig } from './config.ts';
import { ipKey } from './limits.ts';
import { RelayProcess } from './testing/relay-process.ts';

const root = resolve(import.meta.dirname, '..');
const linux = process.platform === 'linux';

let nextPort = 29300;
const relays: RelayProcess[] = [];
const children: ChildProcess[] = [];
const nodes: Libp2p[] = [];
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.terminate();
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const r of relays.splice(0)) r.kill();
});

async function startRelay(flags: string[]): Promise<RelayProcess> {
  const keyFile = join(mkdtempSync(join(tmpdir(), 'relay-')), 'key.pb');
  const relay = new RelayProcess(nextPort++, nextPort++, keyFile, flags, { RELAY_LOG_LEVEL: 'debug' });
  relays.push(relay);
  await relay.start();
  return relay;
}

async function metrics(relay: RelayProcess) {
  const text = await (await fetch(`http://127.0.0.1:${relay.httpPort}/metrics`)).text();
  const refused = (reason: string) =>
    Number(text.match(new RegExp(`^webtensor_relay_refused_total\\{reason="${reason}"\\} (\\d+)$`, 'm'))?.[1]);
  const reservations = Number(text.match(/^webtensor_relay_reservations (\d+)$/m)?.[1]);
  return { refused, reservations };
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** reserve-client.ts as a process: `count` identities from `from`; `reserved()` counts the ones that reserved. */
function reserveClients(relay: RelayProcess, count: number, from?: string) {
  const args = ['--experimental-websocket', '--import', 'tsx', 'relay/testing/reserve-client.ts', relay.multiaddr];
  const child = spawn(process.execPath, [...args, '--count', `${count}`, ...(from ? ['--from', from] : [])], {
    cwd: root,
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, reserved: () => out.match(/^reserved /gm)?.length ?? 0, output: () => out };
}

/** A raw WebSocket to the relay from `from`: no libp2p handshake, just a connection held open. */
function rawSocket(relay: RelayProcess, from = '127.0.0.1') {
  const socket = new WebSocket(`ws://127.0.0.1:${relay.port}`, { localAddress: from });
  sockets.push(socket);
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => (closed = true));
  const opened = new Promise<void>((res) => {
    socket.on('open', () => res());
    socket.on('close', () => res());
  });
  return { socket, opened, closed: () => closed };
}

describe('relay limits', () => {
  it('holds one IP to --max-reservations-per-ip, counts per IP, and frees the slots once the holders leave', async () => {
    const relay = await startRelay(['--max-reservations-per-ip', '4']);
    const attacker = reserveClients(relay, 10);
    await until('4 reservations and 6 refusals', async () => {
      const m = await metrics(relay);
      return m.reservations === 4 && m.refused('reservations-per-ip') >= 6;
    });
    await until('the attacker to see its 4 reservations', () => attacker.reserved() === 4);
    expect(relay.output).toMatch(/"level":"debug","msg":"refused","reason":"reservations-per-ip"/);

    if (linux) {
      // Another address is not held back by the one that is full.
      const other = reserveClients(relay, 1, '127.0.0.2');
      await until('a reservation from 127.0.0.2', () => other.reserved() === 1);
      expect((await metrics(relay)).reservations).toBe(5);
    }
    expect(attacker.reserved()).toBe(4); // the refused identities never got one later

    // The attacker's identities leave: their reservations go with them, and an honest peer on 127.0.0.1 reserves.
    attacker.child.kill('SIGKILL');
    await until(
      'the attacker’s reservations to go',
      async () => (await metrics(relay)).reservations === (linux ? 1 : 0),
    );
    const honest = reserveClients(relay, 1);
    await until('an honest reservation from 127.0.0.1', () => honest.reserved() === 1);
  });

  it('holds one IP to --max-connections-per-ip open connections, handshakes included', async () => {
    const relay = await startRelay(['--max-reservations-per-ip', '2', '--max-connections-per-ip', '3']);
    const held = Array.from({ length: 6 }, () => rawSocket(relay));
    await Promise.all(held.map((h) => h.opened));
    // Refused connections are closed at once; accepted ones wait for a handshake that never comes.
    await until('3 refusals', async () => (await metrics(relay)).refused('connections-per-ip') === 3);
    await until('the refused sockets to close', () => held.filter((h) => h.closed()).length === 3);
    expect(relay.output).toMatch(/"msg":"refused","reason":"connections-per-ip","ip":"127.0.0.1","open":3/);

    if (linux) {
      const other = rawSocket(relay, '127.0.0.2');
      await other.opened;
      await new Promise((r) => setTimeout(r, 300));
      expect(other.closed()).toBe(false);
    }
    // Once the held connections close, the IP may connect again.
    for (const h of held) h.socket.terminate();
    await new Promise((r) => setTimeout(r, 300));
    const again = rawSocket(relay);
    await again.opened;
    await new Promise((r) => setTimeout(r, 300));
    expect(again.closed()).toBe(false);
    expect((await metrics(relay)).refused('connections-per-ip')).toBe(3);
  });

  it('holds one IP to --connection-rate-per-ip new connections a minute', async () => {
    const relay = await startRelay(['--connection-rate-per-ip', '5']);
    for (let k = 0; k < 8; k++) {
      const s = rawSocket(relay);
      await s.opened;
      s.socket.terminate();
    }
    await until('3 refusals', async () => (await metrics(relay)).refused('connection-rate-per-ip') === 3);
    if (linux) {
      const other = rawSocket(relay, '127.0.0.2');
      await other.opened;
      await new Promise((r) => setTimeout(r, 300));
      expect(other.closed()).toBe(false);
      expect((await metrics(relay)).refused('connection-rate-per-ip')).toBe(3);
    }
  });

  it('rate-limits a peer flooding the peer list, and still answers another peer', async () => {
    const relay = await startRelay(['--peer-list-rate', '5']);
    (globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket; // Node 20 has none; libp2p dials with it
    const peer = async () => {
      const node = await createLibp2p({
        transports: [webSockets()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
        connectionGater: { denyDialMultiaddr: () => false },
        services: { identify: identify() },
      });
      nodes.push(node);
      await node.dial(multiaddr(relay.multiaddr));
      return node;
    };
    const ask = async (node: Libp2p): Promise<boolean> => {
      try {
        const stream = await node.dialProtocol(peerIdFromString(relay.peerId), PROTOCOLS.peers, {
          signal: AbortSignal.timeout(5000),
        });
        const bytes = await lpStream(stream, { maxDataLength: MAX_FRAME_BYTES }).read({
          signal: AbortSignal.timeout(5000),
        });
        await stream.close().catch(() => {});
        decodeFrame(bytes.subarray(), peerListSchema);
        return true;
      } catch {
        return false;
      }
    };
    const flooder = await peer();
    const answers: boolean[] = [];
    for (let k = 0; k < 12; k++) answers.push(await ask(flooder));
    expect(answers.filter(Boolean).length).toBe(5);
    expect(answers.slice(0, 5).every(Boolean)).toBe(true);
    expect((await metrics(relay)).refused('peer-list-rate')).toBe(7);
    expect(relay.output).toMatch(/"msg":"refused","reason":"peer-list-rate","peer":"12D3/);

    const honest = await peer();
    expect(await ask(honest)).toBe(true);
    expect(await ask(flooder)).toBe(false);
  });

  it('reads the limits from flags and RELAY_* variables, with low defaults, and refuses inconsistent ones', () => {
    expect(parseRelayConfig([], {})).toMatchObject({
      maxReservationsPerIp: 8,
      maxConnectionsPerIp: 16,
      connectionRatePerIp: 60,
      peerListRate: 60,
    });
    expect(
      parseRelayConfig(['--max-reservations-per-ip', '2'], {
        RELAY_MAX_RESERVATIONS_PER_IP: '3',
        RELAY_MAX_CONNECTIONS_PER_IP: '5',
        RELAY_CONNECTION_RATE_PER_IP: '7',
        RELAY_PEER_LIST_RATE: '9',
      }),
    ).toMatchObject({ maxReservationsPerIp: 2, maxConnectionsPerIp: 5, connectionRatePerIp: 7, peerListRate: 9 });
    expect(() => parseRelayConfig(['--max-reservations-per-ip', '0'], {})).toThrow(
      /--max-reservations-per-ip must be an integer from 1/,
    );
    expect(() => parseRelayConfig(['--max-connections-per-ip', '4'], {})).toThrow(
      /--max-connections-per-ip \(4\) must be at least --max-reservations-per-ip \(8\)/,
    );
  });

  it('counts IPv4 addresses one by one and IPv6 addresses by their /64', () => {
    expect(ipKey(multiaddr('/ip4/10.1.2.3/tcp/5/ws'))).toBe('10.1.2.3');
    expect(ipKey(multiaddr('/ip6/2001:db8:0:1:aaaa::1/tcp/5/ws'))).toBe('2001:db8:0:1::/64');
    expect(ipKey(multiaddr('/ip6/2001:db8:0:1:bbbb:1:2:3/tcp/5'))).toBe('2001:db8:0:1::/64');
    expect(ipKey(multiaddr('/ip6/2001:db8::1/tcp/5'))).toBe('2001:db8:0:0::/64');
    expect(ipKey(multiaddr('/ip6/::ffff:10.0.0.1/tcp/5'))).toBe('10.0.0.1');
    expect(ipKey(multiaddr('/ip6/::1/tcp/5'))).toBe('0:0:0:0::/64');
    expect(ipKey(multiaddr('/dns4/example.org/tcp/5'))).toBe(null);
  });
});
