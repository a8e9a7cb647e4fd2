/**
 * The window's guards: the CSP header on the app's responses, no navigation away from
 * the app page (https links go to the system browser), no new windows, no webviews,
 * every permission request denied.
 */
import type { HandlerDetails, Session, WebContents, WindowOpenHandlerResponse } from 'electron';
import { contentSecurityPolicy } from '../bridge/csp.js';

export const APP_CSP = contentSecurityPolicy();

/** Schemes opened outside the app (in the user's browser), never inside it. */
export const EXTERNAL_SCHEMES = new Set(['https:']);

/** The same document: the app page, whatever its fragment (the renderer may use #routes). */
export function isAppPage(url: string, appUrl: string): boolean {
  try {
    const a = new URL(url);
    const b = new URL(appUrl);
    return a.protocol === b.protocol && a.host === b.host && a.pathname === b.pathname && a.search === b.search;
  } catch {
    return false;
  }
}

/** An https URL the system browser may open. */
export function externalUrl(url: string): string | null {
  try {
    const parsed = new URL(url);
    return EXTERNAL_SCHEMES.has(parsed.protocol) ? parsed.toString() : null;
  } catch {
    return null;
  }
}

/** Adds the CSP (replacing any other) to every response the session gets. */
export function installCsp(session: Session): void {
  session.webRequest.onHeadersReceived((details, callback) => {
    const headers: Record<string, string[]> = {};
    for (const [name, value] of Object.entries(details.responseHeaders ?? {})) {
      if (name.toLowerCase() !== 'content-security-policy') headers[name] = value;
    }
    headers['Content-Security-Policy'] = [APP_CSP];
    headers['X-Content-Type-Options'] = ['nosniff'];
    callback({ responseHeaders: headers });
  });
}

export function installPermissionGuards(session: Session): void {
  session.setPermissionRequestHandler((_webContents, _permission, callback) => callback(false));
  session.setPermissionCheckHandler(() => false);
  session.setDevicePermissionHandler(() => false);
}

export type OpenExternal = (url: string) => Promise<void> | void;

export function windowOpenHandler(openExternal: OpenExternal): (details: HandlerDetails) => WindowOpenHandlerResponse {
  return (details) => {
    const external = externalUrl(details.url);
    if (external !== null) void Promise.resolve(openExternal(external)).catch(() => undefined);
    return { action: 'deny' };
  };
}

/** will-navigate / will-redirect / will-frame-navigate: only the app page itself. */
export function navigationGuard(appUrl: string, openExternal: OpenExternal): (event: { preventDefault(): void }, url: string) => void {
  return (event, url) => {
    if (isAppPage(url, appUrl)) return;
    event.preventDefault();
    const external = externalUrl(url);
    if (external !== null) void Promise.resolve(openExternal(external)).catch(() => undefined);
  };
}

export function installNavigationGuards(contents: WebContents, appUrl: string, openExternal: OpenExternal): void {
  const guard = navigationGuard(appUrl, openExternal);
  contents.on('will-navigate', (event, url) => guard(event, url));
  contents.on('will-redirect', (event, url) => guard(event, url));
  contents.setWindowOpenHandler(windowOpenHandler(openExternal));
  contents.on('will-attach-webview', (event) => event.preventDefault());
}
