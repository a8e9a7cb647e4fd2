/**
 * Who the helper works for: the user who started it. Under pkexec that is
 * PKEXEC_UID (pkexec runs us as root); otherwise our own uid. The socket directory
 * and socket are handed to this user so only they (and root) can connect.
 */
import { readFileSync } from 'node:fs';

export interface Owner {
  uid: number;
  gid: number;
  /** Supplementary groups (from /etc/group), used when files are opened with the owner's rights. */
  groups?: number[];
}

function passwdEntry(uid: number, passwd: string): { name: string; gid: number } | undefined {
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields.length >= 4 && Number(fields[2]) === uid) {
      const gid = Number(fields[3]);
      if (Number.isInteger(gid) && gid >= 0) return { name: fields[0] ?? '', gid };
    }
  }
  return undefined;
}

/** The groups that list `user` as a member in /etc/group text, plus `gid`. */
export function groupsOf(user: string | undefined, gid: number, groupText: string): number[] {
  const groups = new Set<number>([gid]);
  if (user) {
    for (const line of groupText.split('\n')) {
      const fields = line.split(':');
      if (fields.length < 4) continue;
      const id = Number(fields[2]);
      if (Number.isInteger(id) && id >= 0 && (fields[3] ?? '').split(',').includes(user)) groups.add(id);
    }
  }
  return [...groups];
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The owner record of `uid`: primary gid and groups from /etc/passwd and /etc/group (gid = uid when unknown). */
export function ownerOf(uid: number): Owner {
  const entry = passwdEntry(uid, readText('/etc/passwd'));
  const gid = entry?.gid ?? uid;
  return { uid, gid, groups: groupsOf(entry?.name, gid, readText('/etc/group')) };
}

export function resolveOwner(env: NodeJS.ProcessEnv = process.env): Owner {
  const selfUid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const selfGid = typeof process.getgid === 'function' ? process.getgid() : 0;
  const raw = env.PKEXEC_UID;
  if (raw === undefined || raw === '' || selfUid !== 0) return { uid: selfUid, gid: selfGid };
  const uid = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(uid)) {
    throw new Error(`PKEXEC_UID is not a user id: ${raw}`);
  }
  return ownerOf(uid);
}
