/**
 * Browser-mode access control: a random token (32 bytes, base64url) that every HTTP
 * request and every WebSocket must carry (query `?token=`, or the HttpOnly
 * SameSite=Strict cookie the server sets after a request with the right token), and
 * a Host check against DNS rebinding (only 127.0.0.1:PORT and localhost:PORT).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { TOKEN_PARAM } from '../shared/wire.js';

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant-time comparison (hashes first, so lengths do not leak either). */
export function tokenMatches(expected: string, given: string | null | undefined): boolean {
  if (given === null || given === undefined || given === '') return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

/** The cookie's name: per port, since browsers share cookies between ports of a host. */
export function cookieName(port: number): string {
  return `blksnap_token_${port}`;
}

export function sessionCookie(port: number, token: string): string {
  return `${cookieName(port)}=${token}; HttpOnly; SameSite=Strict; Path=/`;
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  if (header === undefined) return cookies;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    cookies.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return cookies;
}

export function allowedHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
}

export function hostAllowed(req: IncomingMessage, port: number): boolean {
  const host = req.headers.host;
  return host !== undefined && allowedHosts(port).has(host.toLowerCase());
}

/** A browser's Origin (when sent) must be this server's own. */
export function originAllowed(req: IncomingMessage, port: number): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  return origin === `http://127.0.0.1:${port}` || origin === `http://localhost:${port}`;
}

export type Credential = { kind: 'query'; valid: boolean } | { kind: 'cookie'; valid: boolean } | { kind: 'none'; valid: false };

/**
 * The request's credential: a non-empty `token` query parameter wins (and must be
 * right); otherwise the cookie.
 */
export function credentialOf(req: IncomingMessage, url: URL, port: number, token: string): Credential {
  const fromQuery = url.searchParams.get(TOKEN_PARAM);
  if (fromQuery !== null && fromQuery !== '') return { kind: 'query', valid: tokenMatches(token, fromQuery) };
  const fromCookie = parseCookies(req.headers.cookie).get(cookieName(port));
  if (fromCookie !== undefined) return { kind: 'cookie', valid: tokenMatches(token, fromCookie) };
  return { kind: 'none', valid: false };
}
