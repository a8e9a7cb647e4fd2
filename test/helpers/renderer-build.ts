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
  await build({
    configFile: RENDERER_CONFIG,
    // 'error': the build's warnings (chunk sizes) are the renderer's business, not the tests' output.
    logLevel: 'error',
    build: { outDir, emptyOutDir: true },
  });
}
