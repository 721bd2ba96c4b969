// Lint + the two choke points of the design: only src/bridge/nl/ talks netlink,
// only src/sys/ spawns processes.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const noNetlink = { name: 'netlink', message: 'Only src/bridge/nl/ may import netlink.' };
const noChildProcess = [
  { name: 'child_process', message: 'Only src/sys/ may spawn processes (use src/sys/exec.ts).' },
  { name: 'node:child_process', message: 'Only src/sys/ may spawn processes (use src/sys/exec.ts).' },
];

export default tseslint.config(
  { ignores: ['.cache/**', 'dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', { paths: [noNetlink, ...noChildProcess] }],
    },
  },
  {
    files: ['src/bridge/nl/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: noChildProcess }] },
  },
  {
    files: ['src/sys/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: [noNetlink] }] },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', Buffer: 'readonly' } },
  },
);
