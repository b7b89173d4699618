import js from '@eslint/js';
import globals from 'globals';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist', 'node_modules', 'test-results', 'playwright-report'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.browser, ...globals.node } },
    plugins: { 'react-hooks': reactHooks },
    rules: {
      ...reactHooks.configs.recommended.rules,
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // shared/ is pure: it imports nothing from the other folders and no Node, browser-storage or worker APIs.
    files: ['shared/**/*.ts'],
    ignores: ['shared/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/web/**', '**/worker/**', '**/relay/**', '**/core/**', 'node:*'],
              message: 'shared/ must stay pure: no app, core, worker, relay or Node imports.',
            },
          ],
        },
      ],
    },
  },
  {
    // The node core's services and assembly do not know where they run: platform APIs come through core/platform.ts.
    files: ['core/*.ts', 'core/services/**/*.ts'],
    ignores: ['core/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '**/web/**',
                '**/worker/**',
                '**/relay/**',
                '**/browser/**',
                '**/nodejs/**',
                'node:*',
                'dexie',
                'comlink',
                'ws',
              ],
              message:
                'core/ services reach the platform only through core/platform.ts (browser/ and nodejs/ implement it).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['core/browser/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/web/**', '**/relay/**', '**/nodejs/**', 'node:*', 'ws'],
              message: 'core/browser/ is the tab platform: shared/, core/ and the workers only.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['core/nodejs/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/web/**', '**/worker/**', '**/relay/**', '**/browser/**', 'dexie', 'comlink'],
              message: 'core/nodejs/ is the Node platform: shared/, core/ and Node APIs only.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['worker/**/*.ts', 'relay/**/*.ts'],
    ignores: ['relay/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [{ group: ['**/web/**', '**/core/**'], message: 'worker/ and relay/ import only shared/.' }],
        },
      ],
    },
  },
  {
    // Pages render stores and send intents; they never open storage or talk to the network themselves.
    files: ['web/**/*.ts', 'web/**/*.tsx'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/nodejs/**', '**/relay/**', 'node:*'],
              message: 'web/ runs in a tab: no Node platform or relay code.',
            },
            {
              group: ['dexie', 'dexie-react-hooks', 'libp2p', '@libp2p/*'],
              message: "Pages read the node's stores; storage and networking live in core/.",
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
);
