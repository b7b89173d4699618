import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'shared/**/*.test.ts',
      'core/**/*.test.ts',
      'web/**/*.test.ts',
      'relay/**/*.test.ts',
      'gateway/**/*.test.ts',
      'worker/**/*.test.ts',
      'scripts/**/*.test.ts',
    ],
    testTimeout: 60_000,
    // libp2p 3 calls Promise.withResolvers, which Node 20 lacks.
    setupFiles: ['shared/polyfills.ts'],
  },
});
