/**
 * The headless node's command line: its arguments (parsed here, and refused by the real program with exit 2),
 * and the program itself as a child process against a real relay in this process: it starts, logs JSON lines,
 * answers /status with its peer id, and stops on SIGINT with exit 0. Every port is a free one the OS picks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessRelay, type InProcessRelay } from '../testing/in-process-relay.ts';
import { DEFAULT_RELAY, parseCliArgs, type CliOptions } from './cli.ts';
import type { NodeStatusView } from './status-server.ts';

let relay: InProcessRelay;
let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  relay = await startInProcessRelay();
  dir = await mkdtemp(join(tmpdir(), 'webtensor-cli-'));
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await relay?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The program as `npm run node` starts it, with stdout split into lines as they come. */
function startCli(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'core/nodejs/cli.ts', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  children.push(child);
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const lines = () =>
    out.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown> & { msg: string });
  /** The first log line with this message, once it is printed. */
  const logged = async (msg: string, ms = 20_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const line = lines().find((l) => l.msg === msg);
      if (line) return line;
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`no "${msg}" line; exit ${child.exitCode}\n${out.stdout}\n${out.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child, out, exited, lines, logged };
}

const parsed = (argv: string[]) => parseCliArgs(argv) as CliOptions;

describe('parseCliArgs', () => {
  it('fills in the defaults', () => {
    const o = parsed(['--role', 'client']);
    expect(o.config).toMatchObject({ role: 'client', relay: { healthUrl: DEFAULT_RELAY }, model: null, network: null });
    expect(o.dataDir).toBe(resolve('.webtensor-node'));
    expect(o.status).toBeNull();
    expect(o.profile).toBeNull();
  });

  it('takes the relay as the http URL tabs use (with or without /healthz) or as a multiaddr', () => {
    const url = (relay: string) => parsed(['--role', 'client', '--relay', relay]).config.relay;
    expect(url('http://relay.example:9091')).toEqual({ healthUrl: 'http://relay.example:9091/healthz' });
    expect(url('https://relay.example/r/')).toEqual({ healthUrl: 'https://relay.example/r/healthz' });
    expect(url('http://127.0.0.1:9091/healthz')).toEqual({ healthUrl: 'http://127.0.0.1:9091/healthz' });
    const ma = '/ip4/127.0.0.1/tcp/9090/ws/p2p/12D3KooWKA4rLiE6CW83gBmFMSBd26eQoneZsXuW1mCsiYCAZiLj';
    const given = url(ma);
    expect('multiaddr' in given && given.multiaddr.toString()).toBe(ma);
  });

  it('reads the network as a profile to insist on, or a config URL', () => {
    expect(parsed(['--role', 'client', '--network', 'production'])).toMatchObject({ profile: 'production' });
    const o = parsed(['--role=validator', '--network', 'http://cfg.example/network.json']);
    expect(o).toMatchObject({
      profile: null,
      config: { role: 'validator', network: 'http://cfg.example/network.json' },
    });
  });

  it('reads the status port, the data directory and the model', () => {
    const o = parsed([
      '--role',
      'miner',
      '--status-port',
      '0',
      '--status-host',
      '0.0.0.0',
      '--data',
      '/var/lib/wt',
      '--model',
      'webtensor/tiny-llama',
    ]);
    expect(o.status).toEqual({ host: '0.0.0.0', port: 0 });
    expect(o.dataDir).toBe('/var/lib/wt');
    expect(o.config.model).toBe('webtensor/tiny-llama');
    expect(o.config.archive).toBe(false);
    expect((parseCliArgs(['--role', 'client', '--archive']) as CliOptions).config.archive).toBe(true);
    expect(o.listen).toEqual({ host: '127.0.0.1', port: 0 });
    const two = parseCliArgs(['--role', 'client', '--relay', 'http://a:1', '--relay', 'http://b:2']) as CliOptions;
    expect(two.config.relay).toEqual({ healthUrl: 'http://a:1/healthz' });
    expect(two.config.moreRelays).toEqual([{ healthUrl: 'http://b:2/healthz' }]);
    expect((parseCliArgs(['--role', 'client', '--listen', 'none']) as CliOptions).listen).toBeNull();
    expect((parseCliArgs(['--role', 'client', '--listen', '0.0.0.0:4001']) as CliOptions).listen).toEqual({
      host: '0.0.0.0',
      port: 4001,
    });
    expect(() => parseCliArgs(['--role', 'client', '--listen', 'here'])).toThrow(/^--listen must be HOST:PORT/);
    expect(o.faucetStake).toBeNull();
    const staked = parseCliArgs(['--role', 'validator', '--faucet-stake', '1000000000000']) as CliOptions;
    expect(staked.faucetStake).toBe(1_000_000_000_000n);
    expect(() => parseCliArgs(['--role', 'validator', '--faucet-stake', '1.5'])).toThrow(/^--faucet-stake must be/);
    expect(o.faucet).toBeNull();
    expect((parseCliArgs(['--role', 'miner', '--faucet', '10000000000']) as CliOptions).faucet).toBe(10_000_000_000n);
    expect(() => parseCliArgs(['--role', 'miner', '--faucet', '0'])).toThrow(/^--faucet must be/);
    expect(() => parseCliArgs(['--role', 'miner', '--fault', 'evil'])).toThrow(/^--fault must be one of wrong-output/);
    expect(parsed(['--role', 'miner', '--fault', 'wrong-output']).config.fault).toBe('wrong-output');
    expect(parsed(['--role', 'miner']).config.fault).toBeNull();
    expect(parseCliArgs(['--help'])).toBe('help');
  });

  it.each([
    [[], '--role is required: miner, validator or client.'],
    [['--role', 'boss'], '--role must be miner, validator or client, not "boss".'],
    [['--role'], '--role needs a value.'],
    [['--role', 'client', '--port', '1'], /^Unknown option --port; the options are --role, --relay, /],
    [['--role', 'client', 'extra'], /^Unexpected argument "extra"/],
    [['--role', 'client', '--relay', 'relay.example'], /^--relay must be the relay's http URL or a multiaddr/],
    [['--role', 'client', '--relay', '/ip4/127.0.0.1/tcp/9090/ws'], /^--relay .* has no \/p2p\/<peer id>/],
    [['--role', 'client', '--model', 'gpt-9'], '--model "gpt-9" is not a text-generation model in the catalogue.'],
    [['--role', 'client', '--data', ' '], '--data must name a directory.'],
    [['--role', 'client', '--network', 'staging'], /^--network must be test, production or the http\(s\) URL/],
    [['--role', 'client', '--status-port', '65536'], '--status-port must be a port number from 0 to 65535.'],
    [['--role', 'client', '--status-port', 'x'], '--status-port must be a port number from 0 to 65535.'],
    [['--role', 'client', '--status-port=-1'], '--status-port must be a port number from 0 to 65535.'],
    [['--role', 'client', '--status-host', 'a b'], '--status-host must be a host name or IP address.'],
  ] as const)('refuses %j with one sentence naming it', (argv, sentence) => {
    expect(() => parseCliArgs([...argv])).toThrow(sentence);
  });
});

describe('the headless node program', () => {
  it('starts a client node, answers /status with its peer id, and stops on SIGINT with exit 0', async () => {
    const cli = startCli([
      '--role',
      'client',
      '--relay',
      relay.healthUrl.replace(/\/healthz$/, ''),
      '--data',
      join(dir, 'client'),
      '--status-port',
      '0',
      '--network',
      'test',
    ]);
    const url = String((await cli.logged('status server listening')).url);
    const started = await cli.logged('node started');
    expect(started.network).toBe('webtensor-test');
    expect(cli.lines().some((l) => l.msg === 'relay reserved')).toBe(true);

    const status = (await (await fetch(`${url}/status`)).json()) as NodeStatusView;
    expect(status).toMatchObject({ peerId: started.peerId, role: 'client', uid: null, stake: '0' });
    expect(await (await fetch(`${url}/healthz`)).text()).toBe('ok');

    cli.child.kill('SIGINT');
    expect(await cli.exited).toBe(0);
    expect(cli.lines().map((l) => l.msg)).toEqual(expect.arrayContaining(['node stopping', 'node stopped']));
    expect(cli.lines().every((l) => l.level && l.time)).toBe(true);
    expect(cli.out.stderr).toBe('');
  }, 60_000);

  it('exits 2 with the sentence on a bad argument', async () => {
    const runs = [
      [['--role', 'boss'], '--role must be miner, validator or client, not "boss".'],
      [['--role', 'client', '--status-port', '-1'], /^--status-port needs a value; write --status-port=VALUE/],
      [['--role', 'client', '--verbose'], /^Unknown option --verbose;/],
    ] as const;
    await Promise.all(
      runs.map(async ([argv, sentence]) => {
        const cli = startCli([...argv]);
        expect(await cli.exited).toBe(2);
        expect(cli.out.stderr.trim()).toMatch(
          typeof sentence === 'string' ? new RegExp(`^${escape(sentence)}$`) : sentence,
        );
        expect(cli.out.stdout).toBe('');
      }),
    );
  }, 30_000);

  it('refuses to mine a model that is not on this machine, clearly, without connecting', async () => {
    const cli = startCli(
      [
        '--role',
        'miner',
        '--relay',
        'http://127.0.0.1:1',
        '--data',
        join(dir, 'miner'),
        '--model',
        'karpathy/stories260K',
      ],
      { WEBTENSOR_SHARED: join(dir, 'no-shared') },
    );
    expect(await cli.exited).toBe(1);
    const [line] = cli.lines();
    expect(line).toMatchObject({ level: 'error', code: 'no-model', role: 'miner', model: 'karpathy/stories260K' });
    expect(line!.msg).toMatch(
      /^A miner needs a model on this machine, and karpathy\/stories260K is not here \(available: webtensor\/tiny-llama\)/,
    );
  }, 30_000);
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
