/** A real relay process for tests: started, killed and restarted with the same identity. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class RelayProcess {
  private child: ChildProcess | null = null;
  readonly keyFile = join(mkdtempSync(join(tmpdir(), 'e2e-relay-')), 'key.pb');
  multiaddr = '';

  constructor(
    readonly port = 9190,
    readonly httpPort = 9191,
  ) {}

  get healthUrl() {
    return `http://127.0.0.1:${this.httpPort}/healthz`;
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
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`relay did not start:\n${out}`)), 30_000);
      const onData = (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.includes('"relay started"'));
        if (line) {
          clearTimeout(timer);
          this.multiaddr = (JSON.parse(line) as { multiaddrs: string[] }).multiaddrs[0]!;
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.on('exit', (code) => reject(new Error(`relay exited with ${code}:\n${out}`)));
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    this.child = null;
  }
}
