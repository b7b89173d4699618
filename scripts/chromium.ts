/**
 * How every browser this project drives is launched: Debian's Chromium (never a downloaded build), with the flags
 * ../shared/notes/P2P.md found necessary here (loopback WebRTC needs --allow-loopback-in-peer-connection plus
 * granted camera/microphone permissions; background networking only makes refused connections offline).
 */
export const chromiumPath = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

export const chromiumArgs = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--allow-loopback-in-peer-connection',
];

export const chromiumLaunchOptions = { executablePath: chromiumPath, args: chromiumArgs };

/** Permissions a context needs for WebRTC between tabs on a loopback-only host. */
export const webrtcPermissions = ['microphone', 'camera'];
