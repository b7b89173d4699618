/**
 * The @libp2p/webrtc fixes (patches/README.md) must be in the code that runs. If an upgrade or a skipped
 * postinstall brings the unpatched code back, WebRTC dials hang, fail or lose their first streams: fail here.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The package's exports map hides package.json, so read it from where npm installs it.
const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '../node_modules/@libp2p/webrtc');
const source = (file: string) => readFileSync(join(pkgDir, 'dist/src/private-to-private', file), 'utf8');
const initiator = source('initiate-connection.js');
const recipient = source('signaling-stream-handler.js');
const util = source('util.js');

describe('@libp2p/webrtc patches', () => {
  it('are applied to the installed version they were written for', () => {
    const version = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
    expect(version).toBe('6.0.33');
    expect(initiator).toContain('webtensor patch (dial race)');
    expect(initiator).toContain('webtensor patch (answer race)');
    expect(util).toContain('webtensor patch (half-open)');
    expect(recipient).toContain('webtensor patch (open race)');
  });

  it('dial race: waits for open or close, never for open alone, and skips the close-wait on a closed channel', () => {
    expect(initiator).toContain("pEvent(channel, ['open', 'close']");
    expect(initiator).not.toMatch(/pEvent\(channel, 'open'/);
    expect(initiator).toMatch(
      /if \(channel\.readyState !== 'closed'\) \{\s*log\.trace\('waiting for init channel to close'\)/,
    );
  });

  it('answer race: candidates are held until the answer is applied, then sent', () => {
    expect(initiator).toMatch(/if \(!answerApplied\) \{[^}]*heldCandidates\.push\(data\)/);
    const applied = initiator.indexOf('answerApplied = true');
    expect(applied).toBeGreaterThan(initiator.indexOf('await peerConnection.setRemoteDescription(answerSdp)'));
    expect(initiator.indexOf('heldCandidates.splice(0)')).toBeGreaterThan(applied);
  });

  it('half-open: a failed or closed peer connection fails the dial', () => {
    expect(util).toMatch(
      /if \(pc\.connectionState === 'failed' \|\| pc\.connectionState === 'closed'\) \{\s*throw err;/,
    );
  });

  it('open race: the recipient waits for a channel of its own, created after its answer, before upgrading', () => {
    const created = recipient.indexOf("probe = peerConnection.createDataChannel('init')");
    expect(created).toBeGreaterThan(recipient.indexOf('await peerConnection.setLocalDescription(answer)'));
    expect(recipient.indexOf("await pEvent(probe, ['open', 'close']")).toBeGreaterThan(
      recipient.indexOf('await readCandidatesUntilConnected'),
    );
  });
});
