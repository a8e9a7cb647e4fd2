/**
 * Where the helper's socket is: the one rule the CLI, the helper (`daemon`), browser
 * mode and the desktop app all use, so each finds the helper another one started.
 *
 *   1. $XDG_RUNTIME_DIR/blksnap-manager/helper.sock, when XDG_RUNTIME_DIR is absolute;
 *   2. /run/user/UID/blksnap-manager/helper.sock, when /run/user/UID exists;
 *   3. TMPDIR/blksnap-manager-UID/helper.sock otherwise (root on a machine without a
 *      login session, containers).
 *
 * UID is the user the helper serves: $PKEXEC_UID when the caller runs under pkexec,
 * else the caller's own. This module stays free of Node built-ins (engine/protocol);
 * the caller supplies the facts about the machine (see SocketPlace).
 */

export const HELPER_DIR_NAME = 'blksnap-manager';
export const HELPER_SOCKET_NAME = 'helper.sock';

/** The facts the rule reads: the environment, the caller's uid and the file system. */
export interface SocketPlace {
  env: Readonly<Record<string, string | undefined>>;
  /** The calling process's uid (process.getuid()). */
  uid: number;
  /** The system's temporary directory (os.tmpdir()). */
  tmpdir: string;
  /** Whether a directory exists (fs.existsSync). */
  exists: (path: string) => boolean;
}

/** The user the helper serves: $PKEXEC_UID under pkexec, else the caller. */
export function servedUid(place: Pick<SocketPlace, 'env' | 'uid'>): number {
  const pk = place.env['PKEXEC_UID'];
  return pk !== undefined && /^\d+$/.test(pk) ? Number(pk) : place.uid;
}

/** The private directory holding the socket (the helper creates it 0700). */
export function helperRuntimeDir(place: SocketPlace): string {
  const xdg = place.env['XDG_RUNTIME_DIR'];
  if (xdg !== undefined && xdg.startsWith('/')) return `${xdg.replace(/\/+$/, '')}/${HELPER_DIR_NAME}`;
  const uid = servedUid(place);
  const run = `/run/user/${uid}`;
  if (place.exists(run)) return `${run}/${HELPER_DIR_NAME}`;
  return `${place.tmpdir.replace(/\/+$/, '')}/${HELPER_DIR_NAME}-${uid}`;
}

export function helperSocketPath(place: SocketPlace): string {
  return `${helperRuntimeDir(place)}/${HELPER_SOCKET_NAME}`;
}
