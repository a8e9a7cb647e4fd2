/**
 * Builds the renderer (renderer/vite.config.ts) into a directory of the caller's, so
 * end-to-end tests run the current sources and never race other builds of
 * renderer/dist.
 */
import { join } from 'node:path';
import { build } from 'vite';

export const PROJECT_ROOT = join(import.meta.dirname, '..', '..');
export const RENDERER_CONFIG = join(PROJECT_ROOT, 'renderer', 'vite.config.ts');

export async function buildRenderer(outDir: string): Promise<void> {
  // vitest sets NODE_ENV=test, which would bundle React's development build.
  const nodeEnv = process.env['NODE_ENV'];
  process.env['NODE_ENV'] = 'production';
  try {
    await build({
      configFile: RENDERER_CONFIG,
      mode: 'production',
      // 'error': the build's warnings (chunk sizes) are the renderer's business, not the tests' output.
      logLevel: 'error',
      build: { outDir, emptyOutDir: true },
    });
  } finally {
    process.env['NODE_ENV'] = nodeEnv;
  }
}
