#!/usr/bin/env node
// `npm start`: build the web app, start the relay and serve the app, then, once the relay is up, an archive node
// (all history, on disk), a headless miner serving webtensor/tiny-llama and the OpenAI-compatible gateway
// (http://127.0.0.1:8080/v1); print the URL to open. State lives in
// .webtensor/ (relay key, the test network's genesis, the archive's and the miner's ledgers), so a restart
// continues the same network. Every service it starts is stopped together on Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { stripVTControlCharacters } from 'node:util';

// The default model is generated at install; generate it here too if install scripts were skipped.
if (!existsSync('generated/models/webtensor/tiny-llama/onnx/model.onnx'))
  spawnSync(process.execPath, ['--import', 'tsx', 'scripts/tiny-llama/generate.ts'], { stdio: 'inherit' });

const build = spawnSync('npx', ['vite', 'build'], { stdio: 'inherit' });
if (build.status !== 0) {
  console.error('The web app did not build; the errors above say why.');
  process.exit(build.status ?? 1);
}

// Where the network's state lives between runs (tests point it at a temporary folder).
const state = process.env.WEBTENSOR_STATE_DIR ?? '.webtensor';

// Services are spawned with node itself (not npx) so that stopping them really stops them.
const services = [
  {
    name: 'relay',
    command: process.execPath,
    // A local network uses the fast test profile (1 s blocks, 20-block epochs) so epochs are seen within minutes.
    args: [
      ...['--experimental-websocket', '--import', 'tsx', 'relay/main.ts', '--network', 'test'],
      ...['--key-file', `${state}/relay-key.pb`, '--genesis-file', `${state}/test-network.json`],
      // Every tab and node of a local network reaches the relay from 127.0.0.1: lift the per-IP limits
      // (relay/limits.ts), whose defaults are for a public relay.
      ...['--max-reservations-per-ip', '100000', '--max-connections-per-ip', '400000'],
      ...['--connection-rate-per-ip', '1000000'],
    ],
    ready: /"health":"(\S+?)"/,
    announce: (url) => `  relay is up: health at ${url}`,
  },
  {
    name: 'archive',
    after: 'relay',
    command: process.execPath,
    args: [
      ...['--import', 'tsx', 'core/nodejs/cli.ts', '--role', 'client', '--archive'],
      ...['--data', `${state}/archive`, '--status-port', '9092'],
    ],
    ready: /"status server listening"/,
    announce: () => '  archive node is up: status at http://127.0.0.1:9092/status',
  },
  {
    name: 'miner',
    after: 'relay',
    command: process.execPath,
    args: [
      ...['--import', 'tsx', 'core/nodejs/cli.ts', '--role', 'miner', '--model', 'webtensor/tiny-llama'],
      ...['--data', `${state}/miner`, '--status-port', '9093'],
    ],
    ready: /"status server listening"/,
    announce: () => '  headless miner is up: status at http://127.0.0.1:9093/status',
  },
  {
    name: 'gateway',
    after: 'relay',
    command: process.execPath,
    // Its wallet draws test τ from the faucet at start, so batches (deposits) work out of the box.
    args: [
      '--import',
      'tsx',
      'gateway/main.ts',
      '--port',
      '8080',
      '--data',
      `${state}/gateway`,
      '--faucet',
      '1000000000000',
    ],
    ready: /"gateway listening"/,
    announce: () => '  OpenAI-compatible gateway is up: http://127.0.0.1:8080/v1',
  },
  {
    name: 'web',
    command: process.execPath,
    args: ['node_modules/vite/bin/vite.js', 'preview'],
    ready: /Local:\s+(\S+)/,
    announce: (url) => `  webtensor is running. Open ${url} in your browser.`,
  },
];
const children = [];

function launch(service) {
  const child = spawn(service.command, service.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const onData = (chunk) => {
    // Tools colour their output when CI is set or on a terminal; match on the plain text.
    const text = stripVTControlCharacters(chunk.toString());
    for (const line of text.split('\n')) if (line.trim()) console.log(`[${service.name}] ${line}`);
    const match = service.ready && text.match(service.ready);
    if (match && !service.started) {
      service.started = true;
      console.log(`\n${service.announce(match[1])}\n`);
      // Nodes start once the relay they join answers.
      for (const next of services) if (next.after === service.name) launch(next);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.on('exit', (code) => {
    console.error(`[${service.name}] exited with code ${code}; stopping everything.`);
    stop(code ?? 1);
  });
}

for (const service of services) if (!service.after) launch(service);

let stopping = false;
function stop(code) {
  if (stopping) return;
  stopping = true;
  const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
  for (const child of running) child.kill('SIGTERM');
  // Wait for each to stop (each frees its ports as it goes); a node stops within 5 s or exits anyway.
  Promise.all(running.map((c) => new Promise((r) => c.once('exit', r)))).then(() => process.exit(code));
  setTimeout(() => process.exit(code), 8000).unref();
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
