// Lint rules, including the layering of docs/architecture.md, enforced per folder
// with no-restricted-imports overrides.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const noNode = { regex: `^(node:.*|(${nodeBuiltins.map(escapeRe).join('|')})(/.*)?)$`, message: 'This layer must not use Node.js modules (see docs/architecture.md).' };
const noElectron = { group: ['electron', 'electron/*'], message: 'Only app/main and app/preload may use electron.' };
const noReact = { group: ['react', 'react/*', 'react-dom', 'react-dom/*', 'zustand', 'zustand/*'], message: 'Only renderer/ may use React.' };
const noApp = { regex: '(^|/)app/', message: 'engine/ must not import from app/.' };
const noRenderer = { regex: '(^|/)renderer/', message: 'Only the renderer imports renderer code.' };
const engineExceptProtocol = {
  regex: '(^|/)engine/(?!protocol/)',
  message: 'app/ reaches the engine only through engine/protocol (the helper protocol).',
};
const noEngine = { regex: '(^|/)engine/', message: 'This layer must not import engine code.' };
const pureEngine = {
  // relative imports from engine/protocol or engine/abi: only ./x, ../protocol/x, ../abi/x
  regex: '^\\.\\./(?!(protocol|abi)/)|(^|/)engine/(?!(protocol|abi)/)',
  message: 'engine/protocol and engine/abi import only each other (plain types and pure functions).',
};
const appExceptShared = {
  regex: '(^|/)app/(?!shared/)',
  message: 'This layer may import only app/shared from app/.',
};
const appExceptSharedAndBridge = {
  regex: '(^|/)app/(?!shared/|bridge/)',
  message: 'app/main, app/preload and app/web may import only app/shared and app/bridge from app/.',
};

const layer = (files, patterns, extra = {}) => ({
  files,
  rules: { 'no-restricted-imports': ['error', { patterns }], ...extra },
});

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'release/**', 'test-results/**', 'bench-results/**', 'renderer/dist/**'] },
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
  // engine/*: never electron, react, app/* or renderer/*.
  layer(['engine/**/*.ts'], [noElectron, noReact, noApp, noRenderer]),
  // app/shared: plain types and pure functions, nothing from the engine.
  layer(['app/shared/**/*.ts'], [noNode, noElectron, noReact, noRenderer, noEngine, appExceptShared]),
  // engine/protocol and engine/abi: plain types and pure functions (abi is the driver interface).
  layer(['engine/protocol/**/*.ts', 'engine/abi/**/*.ts'], [noNode, noElectron, noReact, noApp, noRenderer, pureEngine]),
  // renderer: app/shared only; the window API through renderer/src/api.ts only.
  layer(['renderer/**/*.{ts,tsx}'], [noNode, noElectron, noEngine, appExceptShared], {
    'no-restricted-syntax': ['error', {
      selector: "MemberExpression[object.name='window'][property.name='blksnap']",
      message: 'Reach the window API only through renderer/src/api.ts.',
    }],
  }),
  { files: ['renderer/src/api.ts'], rules: { 'no-restricted-syntax': 'off' } },
  // app/main, app/preload, app/web: app/shared, app/bridge and engine/protocol.
  layer(['app/main/**/*.ts', 'app/preload/**/*.ts'], [noReact, noRenderer, engineExceptProtocol, appExceptSharedAndBridge]),
  layer(['app/web/**/*.ts'], [noElectron, noReact, noRenderer, engineExceptProtocol, appExceptSharedAndBridge]),
  // app/bridge: the contract implemented over the helper client (Node, no Electron),
  // shared by app/main (IPC) and app/web (WebSocket).
  layer(['app/bridge/**/*.ts'], [noElectron, noReact, noRenderer, engineExceptProtocol, appExceptShared]),
);
