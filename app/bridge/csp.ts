/**
 * The Content-Security-Policy of the app's pages, shared by Electron (app/main, via
 * session.webRequest) and browser mode (app/web, an HTTP header).
 */
export const CSP_DIRECTIVES: readonly (readonly [string, string])[] = [
  ['default-src', "'self'"],
  ['script-src', "'self'"],
  ['style-src', "'self'"],
  ['img-src', "'self' data:"],
  ['connect-src', "'self'"],
  ['object-src', "'none'"],
  ['base-uri', "'none'"],
  ['frame-ancestors', "'none'"],
  ['form-action', "'none'"],
];

/**
 * The policy text. `connectExtra`: more connect-src sources (browser mode lists its
 * own ws:// origin, which older browsers do not count as 'self').
 */
export function contentSecurityPolicy(connectExtra: readonly string[] = []): string {
  return CSP_DIRECTIVES.map(([name, value]) =>
    name === 'connect-src' && connectExtra.length > 0 ? `${name} ${value} ${connectExtra.join(' ')}` : `${name} ${value}`,
  ).join('; ');
}
