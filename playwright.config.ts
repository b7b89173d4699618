import { defineConfig } from '@playwright/test';

import { chromiumLaunchOptions, webrtcPermissions } from './scripts/chromium.ts';

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
    launchOptions: chromiumLaunchOptions,
    permissions: webrtcPermissions,
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
