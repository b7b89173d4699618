/**
 * The Node processes an e2e spec starts (headless nodes, gateways), each with its output kept so a failing test
 * can print it, and all stopped together.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export class Processes {
  private readonly logs = new Map<ChildProcess, { name: string; log: string }>();

  /** `root`: the folder each node's data goes under; `relayHealthUrl`: the relay nodes ask where to dial. */
  constructor(
    private readonly root: string,
    private readonly relayHealthUrl: () => string,
  ) {}

  /** Run a TypeScript entry point (tsx) with `args`, named `name` in the logs. */
  start(name: string, args: string[]): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const entry = { name, log: '' };
    this.logs.set(child, entry);
    const add = (d: Buffer) => (entry.log += d.toString());
    child.stdout!.on('data', add);
    child.stderr!.on('data', add);
    return child;
  }

  /** A headless node (core/nodejs/cli.ts) with its data under root/name and its status on `port`. */
  node(name: string, port: number, ...extra: string[]): ChildProcess {
    return this.start(name, [
      'core/nodejs/cli.ts',
      ...['--relay', this.relayHealthUrl(), '--data', join(this.root, name), '--status-port', String(port)],
      ...extra,
    ]);
  }

  /**
   * Stop every process and wait until each has exited (SIGKILL after `graceMs`), so that the next spec does not
   * share the machine's two cores with nodes still shutting down.
   */
  async stopAll(graceMs = 5000): Promise<void> {
    await Promise.all([...this.logs.keys()].map((child) => stopProcess(child, graceMs)));
  }

  /** Print the last `chars` of every process's output (for a test that failed). */
  printLogs(chars = 3000): void {
    for (const { name, log } of this.logs.values()) console.log(`--- ${name}\n${log.slice(-chars)}`);
  }
}

/** SIGTERM `child`, SIGKILL it if it is still running after `graceMs`; resolves once it has exited. */
export function stopProcess(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(killer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
