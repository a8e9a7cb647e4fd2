/**
 * Who the helper works for: the user who started it. Under pkexec that is
 * PKEXEC_UID (pkexec runs us as root); otherwise our own uid. The socket directory
 * and socket are handed to this user so only they (and root) can connect.
 */
import { readFileSync } from 'node:fs';

export interface Owner {
  uid: number;
  gid: number;
}

function primaryGid(uid: number, passwd: string): number | undefined {
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields.length >= 4 && Number(fields[2]) === uid) {
      const gid = Number(fields[3]);
      if (Number.isInteger(gid) && gid >= 0) return gid;
    }
  }
  return undefined;
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
  let gid: number | undefined;
  try {
    gid = primaryGid(uid, readFileSync('/etc/passwd', 'utf8'));
  } catch {
    gid = undefined;
  }
  return { uid, gid: gid ?? uid };
}
