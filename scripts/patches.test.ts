/**
 * The @libp2p/webrtc dial-race fix (../shared/notes/P2P.md, pitfall 1) must be in the code that runs. If an
 * upgrade or a skipped postinstall brings the unpatched code back, about 10 % of WebRTC dials hang: fail here.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The package's exports map hides package.json, so read it from where npm installs it.
const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '../node_modules/@libp2p/webrtc');
const initiator = readFileSync(join(pkgDir, 'dist/src/private-to-private/initiate-connection.js'), 'utf8');

describe('@libp2p/webrtc dial-race patch', () => {
  it('is applied to the installed version the patch was written for', () => {
    const version = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
    expect(version).toBe('6.0.33');
    expect(initiator).toContain('webtensor patch (dial race)');
  });

  it('waits for open or close, never for open alone, and skips the close-wait on a closed channel', () => {
    expect(initiator).toContain("pEvent(channel, ['open', 'close']");
    expect(initiator).not.toMatch(/pEvent\(channel, 'open'/);
    expect(initiator).toMatch(
      /if \(channel\.readyState !== 'closed'\) \{\s*log\.trace\('waiting for init channel to close'\)/,
    );
  });
});
