/**
 * Start core/testing/swarm.ts as a child process (`count` headless nodes on `relay`, control port `port`) and
 * resolve once every node has started; `children` collects it so the caller can stop it (SIGTERM).
 */
import { spawn, type ChildProcess } from 'node:child_process';

export function startSwarm(relay: string, count: number, port: number, children: ChildProcess[]): Promise<void> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'core/testing/swarm.ts', '--relay', relay, '--count', `${count}`, '--port', `${port}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.includes('"swarm":"ready"')) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`swarm on ${port} exited with ${code}:\n${output}`)));
  });
}
