/** The relay as a process: real libp2p over WebSockets, a real reservation, health, metrics, identity, shutdown. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RelayProcess } from './testing/relay-process.ts';
import { loadNetworkConfig, parseRelayConfig } from './config.ts';
import { productionProfile } from '../shared/ledger/profiles.ts';

function writeProduction(dir: string): string {
  const file = join(dir, 'production.json');
  writeFileSync(file, JSON.stringify(productionProfile()));
  return file;
}

const root = resolve(import.meta.dirname, '..');
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

let nextPort = 29100;
const relays: RelayProcess[] = [];
afterEach(() => relays.splice(0).forEach((r) => r.kill()));

async function startRelay(keyFile: string) {
  const relay = new RelayProcess(nextPort++, nextPort++, keyFile);
  relays.push(relay);
  await relay.start();
  return relay;
}

const metric = (text: string, name: string) => Number(text.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1]);

describe('relay', () => {
  it('grants a real circuit-relay reservation to a libp2p peer and reports it in /metrics', async () => {
    const keyFile = join(mkdtempSync(join(tmpdir(), 'relay-')), 'key.pb');
    const relay = await startRelay(keyFile);
    const { multiaddr, peerId } = relay;
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);

    const health = await (await fetch(`http://127.0.0.1:${relay.httpPort}/healthz`)).json();
    expect(health).toMatchObject({ status: 'ok', peerId, reservations: 0 });

    const client = spawn(
      process.execPath,
      ['--experimental-websocket', '--import', 'tsx', 'relay/testing/reserve-client.ts', multiaddr],
      { cwd: root },
    );
    children.push(client);
    const reserved = await new Promise<string>((res, rej) => {
      let out = '';
      const timer = setTimeout(() => rej(new Error(`no reservation: ${out}`)), 30_000);
      client.stdout!.on('data', (d) => {
        out += d;
        const m = out.match(/reserved (\S+)/);
        if (m) {
          clearTimeout(timer);
          res(m[1]!);
        }
      });
      client.stderr!.on('data', (d) => (out += d));
    });
    expect(reserved).toContain(`/p2p/${peerId}/p2p-circuit`);
    const metrics = await (await fetch(`http://127.0.0.1:${relay.httpPort}/metrics`)).text();
    expect(metric(metrics, 'webtensor_relay_reservations')).toBe(1);
    expect(metric(metrics, 'webtensor_relay_connections')).toBeGreaterThanOrEqual(1);
  });

  it('survives garbage on both ports and keeps serving', async () => {
    const keyFile = join(mkdtempSync(join(tmpdir(), 'relay-')), 'key.pb');
    const relay = await startRelay(keyFile);
    const wsPort = relay.port;
    const junk = (port: number, data: Buffer | string) =>
      new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.write(data);
          setTimeout(() => socket.destroy(), 200);
        });
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
      });
    await junk(wsPort, Buffer.alloc(256 * 1024, 0xff)); // not HTTP at all
    await junk(
      wsPort,
      'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: AAAA\r\n\r\n\x89\xff garbage',
    );
    await junk(relay.httpPort, `GET /${'a'.repeat(100_000)} HTTP/1.1\r\n\r\n`);
    expect((await fetch(`http://127.0.0.1:${relay.httpPort}/healthz`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`http://127.0.0.1:${relay.httpPort}/nope`)).status).toBe(404);
    expect(await (await fetch(`http://127.0.0.1:${relay.httpPort}/healthz`)).json()).toMatchObject({ status: 'ok' });
    expect(relay.running).toBe(true);
  });

  it('keeps its identity across restarts and stops cleanly on SIGTERM', async () => {
    const keyFile = join(mkdtempSync(join(tmpdir(), 'relay-')), 'key.pb');
    const first = await startRelay(keyFile);
    expect(await first.stop()).toBe(0);
    expect(first.output).toContain('"relay stopped"');
    const second = await startRelay(keyFile);
    expect(second.peerId).toBe(first.peerId);
  });

  it('refuses bad configuration with a message naming the option', () => {
    expect(() => parseRelayConfig(['--port', '99999'], {})).toThrow(/--port must be an integer from 0 to 65535/);
    expect(() => parseRelayConfig(['--prot', '1'], {})).toThrow(/unknown option --prot/);
    expect(() => parseRelayConfig(['--tls-cert', 'a.pem'], {})).toThrow(
      /--tls-cert and --tls-key must be given together/,
    );
    expect(() => parseRelayConfig([], { RELAY_HTTP_PORT: 'abc' })).toThrow(/--http-port/);
    expect(parseRelayConfig(['--port=7000'], { RELAY_HOST: '0.0.0.0' })).toMatchObject({
      port: 7000,
      host: '0.0.0.0',
      httpPort: 9091,
    });
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'relay/main.ts', '--port', 'x'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/bad relay configuration: --port must be/);
  });

  it('serves the network config it was started with, and refuses a bad one naming the field', async () => {
    const relay = new RelayProcess(nextPort++, nextPort++, undefined, ['--network', 'test']);
    relays.push(relay);
    const before = Date.now();
    await relay.start();
    const config = (await (await fetch(relay.networkUrl)).json()) as { profile: string; genesisMs: number };
    expect(config.profile).toBe('test');
    expect(config.genesisMs).toBeGreaterThan(before - 2000);
    const prod = await startRelay(join(mkdtempSync(join(tmpdir(), 'relay-')), 'key.pb'));
    expect(((await (await fetch(prod.networkUrl)).json()) as { blockMs: number }).blockMs).toBe(12_000);

    const file = join(mkdtempSync(join(tmpdir(), 'net-')), 'network.json');
    writeFileSync(file, JSON.stringify({ ...config, subnets: [{ netuid: 1, tempo: 'soon' }] }));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'relay/main.ts', '--network', file], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/invalid at subnets\.0\./);
  });

  it("keeps a test network's genesis in --genesis-file across restarts, and refuses a file of another profile", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'genesis-'));
    const genesisFile = join(dir, 'state', 'test-network.json');
    const relay = new RelayProcess(nextPort++, nextPort++, join(dir, 'key.pb'), [
      '--network',
      'test',
      '--genesis-file',
      genesisFile,
    ]);
    relays.push(relay);
    await relay.start();
    const first = (await (await fetch(relay.networkUrl)).json()) as { genesisMs: number };
    expect(statSync(genesisFile).isFile()).toBe(true);
    await relay.stop();
    await new Promise((r) => setTimeout(r, 1100)); // a fresh test network would start a second later
    await relay.start();
    const second = (await (await fetch(relay.networkUrl)).json()) as { genesisMs: number };
    expect(second.genesisMs).toBe(first.genesisMs);

    expect(() => loadNetworkConfig('test', Date.now(), writeProduction(dir))).toThrow(
      /--genesis-file .* holds a production network, not a test network/,
    );
  });

  // THREATS.md finding 12: a hub model at a branch can change under the same name, so it is never a subnet's model.
  it('refuses a network whose subnet model is a hub branch rather than a pinned model, naming it', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'net-')), 'network.json');
    const test = loadNetworkConfig('test', Date.now());
    const subnet = { ...test.subnets[0]!, model: 'Xenova/llama2.c-stories15M' };
    writeFileSync(file, JSON.stringify({ ...test, subnets: [subnet] }));
    expect(() => loadNetworkConfig(file, Date.now())).toThrow(
      /subnet 1: Xenova\/llama2\.c-stories15M is a hub model at the branch "main", not pinned to a commit/,
    );
    writeFileSync(file, JSON.stringify(test));
    expect(loadNetworkConfig(file, Date.now()).subnets[0]!.model).toBe(test.subnets[0]!.model);
  });

  it('refuses a corrupt key file instead of silently replacing the identity', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relay-'));
    const keyFile = join(dir, 'key.pb');
    (await import('node:fs')).writeFileSync(keyFile, 'not a key');
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'relay/main.ts', '--port', '0', '--http-port', '0', '--key-file', keyFile],
      { cwd: root, encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/is not a libp2p private key/);
  });
});
