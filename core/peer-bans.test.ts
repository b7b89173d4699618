/**
 * Bans: expiry and the bound on entries, and the real libp2p gater: a banned peer can neither dial this node
 * nor be dialled by it (two Node libp2p nodes over WebSockets on loopback).
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { afterEach, describe, expect, it } from 'vitest';
import { createNodeLibp2p } from './nodejs/libp2p.ts';
import { PeerBans } from './peer-bans.ts';
import type { Libp2pNode } from './platform.ts';

const started: Libp2pNode[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((n) => n.stop()));
});

describe('PeerBans', () => {
  it('bans for a while, then forgets', () => {
    let now = 0;
    const bans = new PeerBans(() => now);
    bans.ban('a', 1000);
    expect(bans.has('a')).toBe(true);
    now = 1001;
    expect(bans.has('a')).toBe(false);
    expect(bans.size).toBe(0);
  });

  it('holds at most 4096 entries, making room from the oldest', () => {
    const bans = new PeerBans(() => 0);
    for (let k = 0; k < 5000; k++) bans.ban(`p${k}`);
    expect(bans.size).toBe(4096);
    expect(bans.has('p0')).toBe(false);
    expect(bans.has('p4999')).toBe(true);
  });

  it('is what libp2p’s gater consults: a banned peer cannot dial in, nor be dialled', async () => {
    const bans = new PeerBans();
    const [ka, kb] = await Promise.all([generateKeyPair('Ed25519'), generateKeyPair('Ed25519')]);
    const listen = { host: '127.0.0.1', port: 0 };
    const a = await createNodeLibp2p(ka, { listen, relays: 0, bans });
    const b = await createNodeLibp2p(kb, { listen, relays: 0 });
    started.push(a, b);
    const bId = peerIdFromPrivateKey(kb);
    bans.ban(bId.toString());
    // B's dial in is dropped once encrypted (when A learns who it is): A holds no connection to it.
    await b.dial(a.getMultiaddrs()[0]!).catch(() => {});
    await expect.poll(() => a.getConnections(bId).length).toBe(0);
    // And A does not dial B.
    const denied = await a.dial(b.getMultiaddrs()[0]!).then(
      () => null,
      (err: Error) => err.name,
    );
    expect(denied).toBe('DialDeniedError');
  });
});
