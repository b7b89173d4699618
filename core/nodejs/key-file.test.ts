/**
 * A Node process's key file: created once, owner-only, the same on every start; replaced only whole, so that a
 * process killed with SIGKILL while saving leaves the old key or the new one, never a broken file.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { describe, expect, it } from 'vitest';
import { NodeError } from '../../shared/errors.ts';
import { encodeKey } from '../key-file.ts';
import { KeyFileIdentity } from './key-file.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const dataDir = () => join(mkdtempSync(join(tmpdir(), 'key-file-')), 'data');

describe('KeyFileIdentity', () => {
  it('creates an owner-only key in an owner-only folder, and loads the same key on the next start', async () => {
    const dir = dataDir();
    const key = await new KeyFileIdentity(dir).loadOrCreateKey();
    const identity = new KeyFileIdentity(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(identity.file).mode & 0o777).toBe(0o600);
    expect(hex(encodeKey(await identity.loadOrCreateKey()))).toBe(hex(encodeKey(key)));
    expect(readdirSync(dir)).toEqual(['node-key.pb']);
  });

  it('gives every process starting at once the same key', async () => {
    const dir = dataDir();
    const keys = await Promise.all([1, 2, 3, 4].map(() => new KeyFileIdentity(dir).loadOrCreateKey()));
    const file = hex(readFileSync(new KeyFileIdentity(dir).file));
    for (const key of keys) expect(hex(encodeKey(key))).toBe(file);
    expect(readdirSync(dir)).toEqual(['node-key.pb']);
  });

  it('replaces the key on save, leaving no temporary file', async () => {
    const dir = dataDir();
    const identity = new KeyFileIdentity(dir);
    await identity.loadOrCreateKey();
    const next = await generateKeyPair('Ed25519');
    await identity.saveKey(next);
    expect(hex(encodeKey(await new KeyFileIdentity(dir).loadOrCreateKey()))).toBe(hex(encodeKey(next)));
    expect(statSync(identity.file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['node-key.pb']);
  });

  it('refuses a file that holds no key rather than replacing the identity', async () => {
    const dir = dataDir();
    const identity = new KeyFileIdentity(dir);
    await identity.loadOrCreateKey();
    writeFileSync(identity.file, '');
    await expect(identity.loadOrCreateKey()).rejects.toThrow(NodeError);
    await expect(identity.loadOrCreateKey()).rejects.toThrow('Move it away');
    expect(readFileSync(identity.file).length).toBe(0);
  });

  it('never shows a broken key file to a reader while keys are saved', async () => {
    // What another process reads at any moment is what a kill at that moment would leave. A key written in place
    // (truncate, then write) shows up empty to this reader hundreds of times in 200 saves.
    const dir = dataDir();
    const identity = new KeyFileIdentity(dir);
    const size = encodeKey(await identity.loadOrCreateKey()).length;
    const reader = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('node:fs');
         let reads = 0, broken = 0;
         process.stdin.on('data', () => { process.stdout.write(JSON.stringify({ reads, broken })); process.exit(0); });
         const loop = () => {
           for (const end = Date.now() + 20; Date.now() < end; reads++)
             try { if (fs.readFileSync(process.argv[1]).length !== ${size}) broken++; } catch { broken++; }
           setImmediate(loop);
         };
         process.stdout.write('reading\\n');
         loop();`,
        identity.file,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    let output = '';
    reader.stdout.on('data', (d: Buffer) => (output += d.toString()));
    const closed = new Promise((done) => reader.on('close', done));
    await expect.poll(() => output, { timeout: 10_000 }).toContain('reading');
    for (let i = 0; i < 200; i++) await identity.saveKey(await generateKeyPair('Ed25519'));
    reader.stdin.end('stop');
    await closed;
    const { reads, broken } = JSON.parse(output.split('\n').pop()!) as { reads: number; broken: number };
    expect(reads).toBeGreaterThan(0);
    expect(broken).toBe(0);
  });

  it('holds the last saved key or the one being saved when the process is killed with SIGKILL', async () => {
    const dir = dataDir();
    const url = (path: string) => JSON.stringify(pathToFileURL(join(root, path)).href);
    // Prints "saving <key>" before each save and "saved" once it resolved.
    const script = `
      const { generateKeyPair } = await import('@libp2p/crypto/keys');
      const { encodeKey } = await import(${url('core/key-file.ts')});
      const { KeyFileIdentity } = await import(${url('core/nodejs/key-file.ts')});
      const identity = new KeyFileIdentity(process.env.DATA_DIR);
      for (;;) {
        const key = await generateKeyPair('Ed25519');
        process.stdout.write('saving ' + Buffer.from(encodeKey(key)).toString('hex') + '\\n');
        await identity.saveKey(key);
        process.stdout.write('saved\\n');
      }`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      env: { ...process.env, DATA_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let partial = '';
    let stderr = '';
    const killAfter = 100 + Math.floor(Math.random() * 100);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop()!;
      lines.push(...parts);
      if (lines.filter((l) => l === 'saved').length >= killAfter) child.kill('SIGKILL');
    });
    const signal = await new Promise((done) => child.on('close', (_code, s) => done(s)));
    expect(signal, `the writer ended by itself:\n${stderr}`).toBe('SIGKILL');

    const saving = lines.filter((l) => l.startsWith('saving ')).map((l) => l.slice('saving '.length));
    const lastSaved = lines.lastIndexOf('saved');
    const acknowledged = lines.slice(0, lastSaved).filter((l) => l.startsWith('saving ')).length - 1;
    // The last key whose save resolved, or the one after it whose save was under way.
    const allowed = saving.slice(acknowledged, acknowledged + 2);
    const key = await new KeyFileIdentity(dir).loadOrCreateKey();
    expect(allowed).toContain(hex(encodeKey(key)));
  });
});
