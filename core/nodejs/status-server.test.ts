/**
 * The status port of a real node on a real (in-process) relay: health follows the node's life, /status and
 * /metrics follow its ledger (registration and stake included), and other paths and methods are refused.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientConfig } from '../config.ts';
import { WebtensorNode, type NodeServices } from '../node.ts';
import { startInProcessRelay, type InProcessRelay } from '../testing/in-process-relay.ts';
import { createNodePlatform } from './platform.ts';
import { startStatusServer, type NodeStatusView, type StatusServer } from './status-server.ts';

let relay: InProcessRelay;
let dir: string;
let node: WebtensorNode;
let server: StatusServer;

beforeAll(async () => {
  relay = await startInProcessRelay();
  dir = await mkdtemp(join(tmpdir(), 'webtensor-status-'));
  node = new WebtensorNode(clientConfig({ healthUrl: relay.healthUrl }), createNodePlatform({ dataDir: dir }));
  server = await startStatusServer({ host: '127.0.0.1', port: 0, node });
});

afterAll(async () => {
  await server?.close();
  await node?.stop();
  await relay?.stop();
  await rm(dir, { recursive: true, force: true });
});

const get = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
const status = async () => (await (await get('/status')).json()) as NodeStatusView;

/** Wait until `read` gives something `test` accepts (the ledger replays once a second). */
async function eventually<T>(read: () => Promise<T>, test: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (test(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the status server', () => {
  let services: NodeServices;

  it('is unhealthy until the node runs, with the reason', async () => {
    const res = await get('/healthz');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'unavailable', reason: 'The node is idle, not running.' });
    expect(await status()).toMatchObject({ peerId: null, role: 'client', uid: null, stake: '0', block: null });
  });

  it('is healthy once the node holds its relay reservation, and tells who it is', async () => {
    services = await node.start();
    const res = await get('/healthz');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');

    const s = await eventually(status, (v) => v.lastFinal !== null);
    expect(s).toMatchObject({ peerId: services.peerId, role: 'client', netuid: 1, uid: null, stake: '0', model: null });
    expect(s.block).toBeGreaterThanOrEqual(0);
    expect(s.lastFinal).toBeGreaterThanOrEqual(-1);
  });

  it('shows the UID once registered and the stake in rao', async () => {
    const ledger = services.ledger!;
    await ledger.registration.ensureRegistered(1, 'miner');
    await ledger.faucetStake(services.peerId, 1_234_567_890_123n);
    await ledger.consensus.replayNow();
    const s = await eventually(status, (v) => v.uid !== null && v.stake !== '0');
    expect(s.uid).toBe(0);
    expect(s.stake).toBe('1234567890123');
  });

  it('serves Prometheus metrics: the process and the node', async () => {
    const res = await get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    expect(text).toContain(
      `webtensor_node_info{peer_id="${services.peerId}",role="client",network="webtensor-test"} 1`,
    );
    expect(text).toMatch(/^webtensor_node_up 1$/m);
    expect(text).toMatch(/^webtensor_node_registered 1$/m);
    expect(text).toMatch(/^webtensor_node_peers\{link="direct"\} 0$/m);
    expect(text).toMatch(/^webtensor_node_peers\{link="relayed"\} 0$/m);
    expect(text).toMatch(/^webtensor_node_last_final_epoch -?\d+$/m);
    expect(text).toMatch(/^# TYPE webtensor_node_rpc_refusals_total counter$/m);
    expect(text).toMatch(/^webtensor_node_rpc_refusals_total 0$/m);
    // register, faucet claim, stake: at least three records of our own.
    const records = Number(/^webtensor_node_records (\d+)$/m.exec(text)?.[1]);
    expect(records).toBeGreaterThanOrEqual(3);
    const block = Number(/^webtensor_node_block (\d+)$/m.exec(text)?.[1]);
    expect(block).toBeGreaterThanOrEqual(0);
  });

  it('can run beside another status server in the same process (a registry each)', async () => {
    const other = await startStatusServer({ host: '127.0.0.1', port: 0, node });
    try {
      const text = await (await fetch(`${other.url}/metrics`)).text();
      expect(text).toMatch(/^webtensor_node_up 1$/m);
      expect(text.match(/^# TYPE process_cpu_user_seconds_total/gm)).toHaveLength(1);
    } finally {
      await other.close();
    }
  });

  it('names an unknown path with 404 and refuses other methods with 405', async () => {
    const missing = await get('/nope?x=1');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: 'not-found', path: '/nope' });

    const post = await get('/status', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await post.json()) as { message: string }).toMatchObject({ error: 'method-not-allowed' });
    expect((await get('/healthz', { method: 'DELETE' })).status).toBe(405);
  });

  it('is unhealthy again once the node stops, and closes', async () => {
    await node.stop();
    const res = await get('/healthz');
    expect(res.status).toBe(503);
    expect(((await res.json()) as { reason: string }).reason).toMatch(/idle/);
    await server.close();
    await expect(get('/healthz')).rejects.toThrow();
  });
});
