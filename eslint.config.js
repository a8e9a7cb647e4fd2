// Lint rules, including the layering of docs/architecture.md: per folder, an
// allow-list of what it may import (folders, packages, Node built-ins); everything
// else is an error, whether imported statically, with import(), require() or
// createRequire() (scripts/eslint-layering.js). test/lint/layering.test.ts proves
// each rule.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import layering from './scripts/eslint-layering.js';

/**
 * What each folder of the shipped code may import besides itself. `folders`:
 * repository folders; `packages`: npm packages; `builtins`: Node.js modules.
 * A folder under engine/, app/ or renderer/src that is not listed may import nothing.
 */
export const LAYERS = [
  { folder: 'engine/abi', folders: [], packages: [], builtins: false },
  { folder: 'engine/protocol', folders: ['engine/abi'], packages: ['zod'], builtins: false },
  // koffi: fcntl OFD locks on fronted images (qemu-style locking); engine/devices: dev_t and holders of fronted block devices
  { folder: 'engine/core', folders: ['engine/abi', 'engine/devices'], packages: ['koffi'], builtins: true },
  { folder: 'engine/devices', folders: ['engine/abi'], packages: [], builtins: true },
  { folder: 'engine/kernel', folders: ['engine/abi'], packages: ['koffi'], builtins: true },
  // koffi: the receive threads' recv, send and pwrite, which read and answer NBD requests (socket-receivers.ts)
  { folder: 'engine/nbd', folders: ['engine/core', 'engine/abi'], packages: ['koffi'], builtins: true },
  // image backups: formats, points, verify, restore (reads snapshot images as engine/core BlockDevices)
  { folder: 'engine/backup', folders: ['engine/core', 'engine/devices', 'engine/abi'], packages: ['zod', '@bokuweb/zstd-wasm'], builtins: true },
  {
    folder: 'engine/helper',
    folders: ['engine/protocol', 'engine/abi', 'engine/core', 'engine/devices', 'engine/kernel', 'engine/nbd', 'engine/backup'],
    // koffi: system calls Node lacks (openat2 for files opened with the caller's rights)
    packages: ['zod', 'koffi'],
    builtins: true,
  },
  { folder: 'engine/cli', folders: ['engine/helper', 'engine/protocol', 'engine/abi', 'engine/core', 'engine/devices', 'engine/backup'], packages: [], builtins: true },
  { folder: 'app/shared', folders: [], packages: ['zod'], builtins: false },
  { folder: 'app/bridge', folders: ['app/shared', 'engine/protocol'], packages: [], builtins: true },
  { folder: 'app/main', folders: ['app/bridge', 'app/shared', 'engine/protocol'], packages: ['electron'], builtins: true },
  { folder: 'app/preload', folders: ['app/shared'], packages: ['electron'], builtins: false },
  { folder: 'app/web', folders: ['app/bridge', 'app/shared', 'engine/protocol'], packages: ['ws'], builtins: true },
  { folder: 'renderer/src', folders: ['app/shared'], packages: ['react', 'react-dom', 'zustand'], builtins: false },
];

const SOURCES = '**/*.{ts,tsx,js,mjs,cjs}';
const layerConfig = ({ folder, folders, packages, builtins }) => ({
  files: [`${folder}/${SOURCES}`],
  rules: { 'layering/allowed-imports': ['error', { layer: folder, folders: [folder, ...folders], packages, builtins }] },
});

/** Globals through which code reaches the page's window (and window.blksnap): only renderer/src/api.ts may. */
const WINDOW_GLOBALS = ['window', 'globalThis', 'self', 'top', 'parent', 'frames'].map((name) => ({
  name,
  message: `Reach the window (and window.blksnap) only through renderer/src/api.ts; "${name}" is the window by another name.`,
}));

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'release/**', 'test-results/**', 'bench-results/**', 'renderer/dist/**', '.tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node }, ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    files: ['renderer/**/*.{ts,tsx}'],
    languageOptions: { globals: { ...globals.browser } },
  },
  // every layered folder: nothing allowed unless its row of LAYERS says so (a new folder starts closed)
  {
    files: [`engine/${SOURCES}`, `app/${SOURCES}`, `renderer/src/${SOURCES}`],
    plugins: { layering },
    rules: {
      'layering/allowed-imports': ['error', { layer: 'unlisted folder', folders: [], packages: [], builtins: false }],
      'no-restricted-globals': ['error', ...WINDOW_GLOBALS],
      'no-restricted-properties': ['error', { object: 'document', property: 'defaultView', message: 'Reach the window only through renderer/src/api.ts.' }],
    },
  },
  ...LAYERS.map(layerConfig),
  { files: ['renderer/src/api.ts'], rules: { 'no-restricted-globals': 'off', 'no-restricted-properties': 'off' } },
);
