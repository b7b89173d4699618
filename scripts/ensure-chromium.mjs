#!/usr/bin/env node
// Makes sure Debian's Chromium is installed for Playwright. Never downloads a browser build of its own:
// as root it installs the `chromium` package with apt; otherwise it stops and names the package.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const path = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (existsSync(path)) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!isRoot) {
  console.error(
    `Chromium is missing at ${path}. Install the Debian package "chromium" (sudo apt-get install -y chromium) and run the tests again.`,
  );
  process.exit(1);
}
console.log(`Chromium is missing at ${path}; installing the Debian package "chromium" with apt-get…`);
for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'chromium']]) {
  const r = spawnSync('apt-get', args, {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (r.status !== 0) {
    console.error(
      `apt-get ${args.join(' ')} failed (exit ${r.status}). Install the Debian package "chromium" by hand.`,
    );
    process.exit(1);
  }
}
if (!existsSync(path)) {
  console.error(`apt-get finished but ${path} is still missing. Set CHROMIUM_PATH to the chromium binary.`);
  process.exit(1);
}
