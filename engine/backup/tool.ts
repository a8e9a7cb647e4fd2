/** Name and version of this tool, as recorded in backup manifests (from package.json). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: { name: string; version: string } | null = null;

export function toolIdentity(): { name: string; version: string } {
  if (cached) return cached;
  cached = { name: 'blksnap-manager', version: 'unknown' };
  // engine/backup (sources) or dist/engine/backup (build): package.json is above.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'blksnap-manager' && typeof pkg.version === 'string') {
        cached = { name: pkg.name, version: pkg.version };
        break;
      }
    } catch {
      // not here; look one folder up
    }
    dir = dirname(dir);
  }
  return cached;
}
