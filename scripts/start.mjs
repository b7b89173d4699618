#!/usr/bin/env node
// `npm start`: build the web app and serve it, then print the URL to open. Every service it starts is stopped
// together on Ctrl-C. (The relay joins this list with the peer-to-peer layer.)
import { spawn, spawnSync } from 'node:child_process';

const build = spawnSync('npx', ['vite', 'build'], { stdio: 'inherit' });
if (build.status !== 0) {
  console.error('The web app did not build; the errors above say why.');
  process.exit(build.status ?? 1);
}

const services = [{ name: 'web', command: 'npx', args: ['vite', 'preview'], ready: /Local:\s+(\S+)/ }];
const children = [];

for (const service of services) {
  const child = spawn(service.command, service.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const onData = (chunk) => {
    const text = chunk.toString();
    for (const line of text.split('\n')) if (line.trim()) console.log(`[${service.name}] ${line}`);
    const match = service.ready && text.match(service.ready);
    if (match) console.log(`\n  webtensor is running. Open ${match[1]} in your browser.\n`);
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
