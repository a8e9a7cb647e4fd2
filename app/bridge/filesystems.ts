/**
 * listFilesystems: mounted filesystems where a difference-storage file can go,
 * from /proc/self/mountinfo (proc(5)) with statfs for the sizes. Pseudo and
 * read-only filesystems, and mounts under /proc, /sys, /dev and /run (except
 * /run/media), are left out.
 */
import { readFile, statfs } from 'node:fs/promises';
import type { FilesystemEntry } from '../shared/types.js';

export interface MountInfo {
  mountpoint: string;
  source: string;
  fstype: string;
  readOnly: boolean;
}

const PSEUDO = new Set([
  'autofs', 'binfmt_misc', 'bpf', 'cgroup', 'cgroup2', 'configfs', 'debugfs', 'devpts', 'devtmpfs', 'efivarfs',
  'fusectl', 'hugetlbfs', 'mqueue', 'nsfs', 'proc', 'pstore', 'ramfs', 'rpc_pipefs', 'securityfs', 'selinuxfs',
  'squashfs', 'sysfs', 'tracefs', 'iso9660', 'fuse.gvfsd-fuse', 'fuse.portal',
]);

/** Octal escapes of mountinfo fields (\040 space, \011 tab, \012 newline, \134 backslash). */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses mountinfo text; malformed lines are skipped. */
export function parseMountInfo(text: string): MountInfo[] {
  const mounts: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 3) continue;
    const mountpoint = fields[4];
    const options = fields[5];
    const fstype = fields[sep + 1];
    const source = fields[sep + 2];
    if (mountpoint === undefined || options === undefined || fstype === undefined || source === undefined) continue;
    mounts.push({
      mountpoint: unescapeMountField(mountpoint),
      source: unescapeMountField(source),
      fstype,
      readOnly: options.split(',').includes('ro'),
    });
  }
  return mounts;
}

function hiddenPath(mountpoint: string): boolean {
  if (mountpoint.startsWith('/run/media/') || mountpoint === '/run/media') return false;
  return ['/proc', '/sys', '/dev', '/run'].some((p) => mountpoint === p || mountpoint.startsWith(`${p}/`));
}

/** The mounts worth offering for difference storage (last mount of a mountpoint wins). */
export function usefulMounts(mounts: MountInfo[]): MountInfo[] {
  const byPoint = new Map<string, MountInfo>();
  for (const m of mounts) byPoint.set(m.mountpoint, m);
  return [...byPoint.values()].filter((m) => !m.readOnly && !PSEUDO.has(m.fstype) && !hiddenPath(m.mountpoint));
}

export async function listFilesystems(mountinfoPath = '/proc/self/mountinfo'): Promise<FilesystemEntry[]> {
  const mounts = usefulMounts(parseMountInfo(await readFile(mountinfoPath, 'utf8')));
  const entries: FilesystemEntry[] = [];
  for (const m of mounts) {
    try {
      const st = await statfs(m.mountpoint);
      const totalBytes = st.blocks * st.bsize;
      if (totalBytes <= 0) continue;
      entries.push({
        mountpoint: m.mountpoint,
        source: m.source.startsWith('/dev/') ? m.source : '',
        fstype: m.fstype,
        totalBytes,
        freeBytes: st.bavail * st.bsize,
      });
    } catch {
      // unreachable mountpoint (permissions, a stale network mount): not offered
    }
  }
  return entries.sort((a, b) => a.mountpoint.localeCompare(b.mountpoint));
}
