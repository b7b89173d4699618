import { defineConfig } from '@playwright/test';

// Debian's Chromium, never a downloaded build (scripts/ensure-chromium.mjs installs it). Flags from
// ../shared/notes/P2P.md: loopback WebRTC needs --allow-loopback-in-peer-connection and granted permissions.
const chromiumArgs = [
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

export default defineConfig({
  testDir: 'e2e',
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env['CI'],
  retries: 0,
  timeout: 120_000,
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  outputDir: 'test-results',
  use: {
    baseURL: 'http://127.0.0.1:4173',
    browserName: 'chromium',
    launchOptions: { executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium', args: chromiumArgs },
    permissions: ['microphone', 'camera'],
    screenshot: 'on',
    trace: 'retain-on-failure',
  },
  webServer: [
    {
      // The production build (test:e2e builds it first): faster and deterministic.
      command: 'npx vite preview',
      port: 4173,
      reuseExistingServer: !process.env['CI'],
      timeout: 60_000,
    },
  ],
});
