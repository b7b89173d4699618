/**
 * A real relay process for tests (relay tests and Playwright): started, stopped with SIGTERM and restarted with the
 * same identity; its output and exit code are kept for assertions. Every node of a test connects from 127.0.0.1,
 * so the relay starts with high per-IP limits (LOOPBACK_TEST_LIMITS); `extraArgs` come after them and win.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOOPBACK_TEST_LIMITS } from './loopback-limits.ts';

export class RelayProcess {
  private child: ChildProcess | null = null;
  multiaddr = '';
  peerId = '';
  /** Everything the current (or last) process printed. */
  output = '';

  constructor(
    readonly port = 9190,
    readonly httpPort = 9191,
    readonly keyFile = join(mkdtempSync(join(tmpdir(), 'relay-')), 'key.pb'),
    /** More flags, e.g. ['--network', 'test']. */
    readonly extraArgs: string[] = [],
    /** Environment added to the relay's, e.g. { RELAY_LOG_LEVEL: 'debug' }. */
    readonly env: Record<string, string> = {},
  ) {}

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null;
  }

  get healthUrl() {
    return `http://127.0.0.1:${this.httpPort}/healthz`;
  }

  get networkUrl() {
    return `http://127.0.0.1:${this.httpPort}/network`;
  }

  async start(): Promise<void> {
    const child = spawn(
      process.execPath,
      [
        '--experimental-websocket',
        '--import',
        'tsx',
        'relay/main.ts',
        '--port',
        `${this.port}`,
        '--http-port',
        `${this.httpPort}`,
        '--key-file',
        this.keyFile,
        ...LOOPBACK_TEST_LIMITS,
        ...this.extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.env } },
    );
    this.child = child;
    this.output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`relay did not start:\n${this.output}`)), 30_000);
      const onData = (d: Buffer) => {
        this.output += d.toString();
        const line = this.output.split('\n').find((l) => l.includes('"relay started"'));
        if (line) {
          clearTimeout(timer);
          const started = JSON.parse(line) as { multiaddrs: string[]; peerId: string };
          this.multiaddr = started.multiaddrs[0]!;
          this.peerId = started.peerId;
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.on('exit', (code) => reject(new Error(`relay exited with ${code}:\n${this.output}`)));
    });
  }

  /** SIGTERM and wait; resolves with the exit code (null if it died from the signal). */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    const code = await exited;
    this.child = null;
    return code;
  }

  /** For afterEach clean-up: never leave a relay behind. */
  kill(): void {
    this.child?.kill('SIGKILL');
    this.child = null;
  }
}
