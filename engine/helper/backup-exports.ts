/**
 * Browsing a backup: a point exported read-only over the helper's NBD server,
 * through engine/backup's qcow2/raw reader (a read-only BlockDevice). The registry
 * is an ExportSource the server consults beside the engine's devices and images.
 */
import { join } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import type { BlockDevice } from '../core/block-device.js';
import type { ExportSource } from '../nbd/export-source.js';
import type { ExportEntry } from '../protocol/schemas.js';
import { BackupDir, deviceKey } from './backup-dir.js';
import { findSetPoint, openPointImage } from './backup-jobs.js';
import type { CallerFs } from './caller-fs.js';

interface Exported {
  name: string;
  device: BlockDevice & { close(): Promise<void> };
  chainDir: string;
  point: string;
}

/** The commands that mount an export read-only (nbdfuse, then a read-only loop device). */
export function mountHint(uri: string, name: string): string {
  const fuseDir = `/tmp/${name}`;
  return [
    `mkdir -p ${fuseDir} /mnt/${name}`,
    `nbdfuse ${fuseDir} '${uri}' &`,
    `LOOP=$(losetup -r -f --show -P ${fuseDir}/nbd)`,
    `mount -o ro $LOOP /mnt/${name}    # a partitioned disk: mount -o ro \${LOOP}p1 /mnt/${name}`,
    `# when done: umount /mnt/${name}; losetup -d $LOOP; fusermount3 -u ${fuseDir}`,
  ].join('\n');
}

export class BackupExports implements ExportSource {
  private readonly exported = new Map<string, Exported>();

  list(): { name: string; description: string }[] {
    return [...this.exported.values()].map((e) => ({ name: e.name, description: `backup ${e.point} in ${e.chainDir} (read-only)` }));
  }

  open(name: string): BlockDevice | undefined {
    return this.exported.get(name)?.device;
  }

  entries(uriFor: (name: string) => string): ExportEntry[] {
    return [...this.exported.values()].map((e) => ({
      name: e.name,
      kind: 'backup' as const,
      uri: uriFor(e.name),
      capacity: e.device.capacity,
      readOnly: true,
      snapshotId: null,
      device: e.chainDir,
    }));
  }

  /** Exports `point` of the set (or chain) folder `dir`, opened with the caller's rights; the same point again gives the same export. */
  async add(files: CallerFs, dir: string, point: string): Promise<{ name: string; chainDir: string }> {
    const set = await BackupDir.open(files, dir, false);
    try {
      const found = await findSetPoint(set, point);
      const chainDir = found.key === null ? dir : join(dir, found.key);
      const name = `backup-${found.key === null ? deviceKey(dir) : found.key}-${point}`.slice(0, 200);
      const existing = this.exported.get(name);
      if (existing && existing.chainDir === chainDir) return { name, chainDir };
      if (existing) throw new BlksnapError('EEXIST', `an export named ${name} exists already (of ${existing.chainDir}); remove it first (backup.unexport)`);
      const image = await openPointImage(set, found).catch((err: unknown) => {
        throw set.rewrite(err);
      });
      this.exported.set(name, { name, device: image, chainDir, point });
      return { name, chainDir };
    } finally {
      set.close();
    }
  }

  async remove(name: string): Promise<void> {
    const e = this.exported.get(name);
    if (!e) throw new BlksnapError('ESRCH', `no backup export named ${name} (exports.list shows them)`);
    this.exported.delete(name);
    await e.device.close();
  }

  async closeAll(): Promise<void> {
    const all = [...this.exported.values()];
    this.exported.clear();
    await Promise.all(all.map((e) => e.device.close().catch(() => undefined)));
  }
}
