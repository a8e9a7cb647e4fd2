import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Paths from this file's URL (no node:path: the renderer folder lints as browser code).
const here = (relative: string): string => decodeURIComponent(new URL(relative, import.meta.url).pathname);

// The renderer is loaded from file:// in Electron and from the browser-mode server:
// relative asset URLs (base './'), no inline scripts (strict CSP), CSS in a file.
export default defineConfig({
  root: here('.'),
  base: './',
  plugins: [react()],
  build: {
    outDir: here('./dist'),
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  server: { fs: { allow: [here('..')] } },
});
