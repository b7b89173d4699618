/**
 * `npm start` as a person runs it (scripts/start.mjs, its state in a temporary folder): relay, app, archive,
 * headless miner and gateway come up and answer (the gateway with a streamed completion from the miner); Ctrl-C
 * stops every one of them and frees every port.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const PORTS = [9090, 9091, 9092, 9093, 8080, 4173];

/** Whether a port on 127.0.0.1 can be listened on (nothing holds it). */
const free = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });

it('npm start brings up relay, app, archive, miner and gateway; Ctrl-C stops them all and frees every port', async () => {
  for (const port of PORTS) expect(await free(port), `port ${port} is taken before the test`).toBe(true);
  const child = spawn(process.execPath, ['scripts/start.mjs'], {
    env: { ...process.env, WEBTENSOR_STATE_DIR: mkdtempSync(join(tmpdir(), 'start-')) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const announced = [
    'webtensor is running',
    'relay is up',
    'archive node is up',
    'headless miner is up',
    'OpenAI-compatible gateway is up: http://127.0.0.1:8080/v1',
  ];
  await expect.poll(() => announced.filter((a) => !output.includes(a)), { timeout: 90_000 }).toEqual([]);

  const app = await fetch('http://127.0.0.1:4173/');
  expect(app.status).toBe(200);
  const archive = (await (await fetch('http://127.0.0.1:9092/status')).json()) as { role: string; peerId: string };
  expect(archive).toMatchObject({ role: 'client' });
  const miner = (await (await fetch('http://127.0.0.1:9093/status')).json()) as { role: string; peerId: string };
  expect(miner).toMatchObject({ role: 'miner' });

  // The gateway lists the miner's model once it registers, and streams its answer.
  const models = async () =>
    ((await (await fetch('http://127.0.0.1:8080/v1/models')).json()) as { data: { id: string }[] }).data.map(
      (m) => m.id,
    );
  await expect.poll(models, { timeout: 60_000 }).toEqual(['webtensor/tiny-llama']);
  const streamed = await fetch('http://127.0.0.1:8080/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'webtensor/tiny-llama',
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 8,
      stream: true,
    }),
  });
  expect(streamed.status).toBe(200);
  expect(streamed.headers.get('x-webtensor-miner')).toBe(miner.peerId);
  expect(await streamed.text()).toMatch(/"finish_reason":"length"[\s\S]*data: \[DONE\]\n\n$/);

  child.kill('SIGINT');
  expect(await exited).toBe(0);
  for (const port of PORTS) expect(await free(port), `port ${port} still held after Ctrl-C`).toBe(true);
}, 180_000);
