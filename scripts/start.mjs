#!/usr/bin/env node
// `npm start`: build the web app, start the relay and serve the app, then print the URL to open. Every service it starts is stopped
// together on Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

// The default model is generated at install; generate it here too if install scripts were skipped.
if (!existsSync('generated/models/webtensor/tiny-llama/onnx/model.onnx'))
  spawnSync(process.execPath, ['--import', 'tsx', 'scripts/tiny-llama/generate.ts'], { stdio: 'inherit' });

const build = spawnSync('npx', ['vite', 'build'], { stdio: 'inherit' });
if (build.status !== 0) {
  console.error('The web app did not build; the errors above say why.');
  process.exit(build.status ?? 1);
}

// Services are spawned with node itself (not npx) so that stopping them really stops them.
const services = [
  {
    name: 'relay',
    command: process.execPath,
    // A local network uses the fast test profile (1 s blocks, 20-block epochs) so epochs are seen within minutes.
    args: ['--experimental-websocket', '--import', 'tsx', 'relay/main.ts', '--network', 'test'],
    ready: /"health":"(\S+?)"/,
    announce: (url) => `  relay is up: health at ${url}`,
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

for (const service of services) {
  const child = spawn(service.command, service.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const onData = (chunk) => {
    const text = chunk.toString();
    for (const line of text.split('\n')) if (line.trim()) console.log(`[${service.name}] ${line}`);
    const match = service.ready && text.match(service.ready);
    if (match) console.log(`\n${service.announce(match[1])}\n`);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.on('exit', (code) => {
    console.error(`[${service.name}] exited with code ${code}; stopping everything.`);
    stop(code ?? 1);
  });
}

let stopping = false;
function stop(code) {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  setTimeout(() => process.exit(code), 500);
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
