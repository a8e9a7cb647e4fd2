/**
 * NBD URIs (the NBD URI specification used by libnbd, qemu and nbdkit):
 * nbd+unix:///EXPORT?socket=PATH and nbd://HOST:PORT/EXPORT.
 */

/** Percent-encodes all but unreserved characters (and '/' when allowed). */
function encode(text: string, keepSlash: boolean): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function unixUri(exportName: string, socketPath: string): string {
  return `nbd+unix:///${encode(exportName, false)}?socket=${encode(socketPath, true)}`;
}

export function tcpUri(exportName: string, port: number, host = '127.0.0.1'): string {
  return `nbd://${host}:${port}/${encode(exportName, false)}`;
}
