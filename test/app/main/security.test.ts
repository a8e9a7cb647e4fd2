import { describe, expect, it, vi } from 'vitest';
import type { Session, WebContents } from 'electron';
import {
  APP_CSP,
  installCsp,
  installNavigationGuards,
  installPermissionGuards,
  isAppPage,
  navigationGuard,
  windowOpenHandler,
} from '../../../app/main/security.js';
import { windowOptions } from '../../../app/main/window-options.js';

vi.mock('electron', () => ({}));

const APP = 'file:///opt/blksnap/resources/app.asar/renderer/dist/index.html';

describe('window options', () => {
  it('turns every Electron security switch on', () => {
    const options = windowOptions('/app/dist/app/preload/preload.js');
    expect(options.webPreferences).toMatchObject({
      preload: '/app/dist/app/preload/preload.js',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
    });
    expect(options.show).toBe(false);
  });
});

describe('CSP', () => {
  it('is the strict policy of the app', () => {
    expect(APP_CSP).toBe(
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    );
  });

  it('is set on every response through session.webRequest.onHeadersReceived, replacing any other', () => {
    type Listener = (details: { url: string; responseHeaders?: Record<string, string[]> }, cb: (r: { responseHeaders?: Record<string, string[]> }) => void) => void;
    let listener: Listener | null = null;
    const session = { webRequest: { onHeadersReceived: (l: Listener) => (listener = l) } } as unknown as Session;
    installCsp(session);
    expect(listener).not.toBeNull();
    let answer: { responseHeaders?: Record<string, string[]> } = {};
    listener!({ url: APP, responseHeaders: { 'content-security-policy': ["default-src *"], 'Content-Type': ['text/html'] } }, (r) => (answer = r));
    expect(answer.responseHeaders).toEqual({
      'Content-Type': ['text/html'],
      'Content-Security-Policy': [APP_CSP],
      'X-Content-Type-Options': ['nosniff'],
    });
  });
});

describe('navigation guards', () => {
  it('knows the app page, whatever its fragment, and nothing else', () => {
    expect(isAppPage(APP, APP)).toBe(true);
    expect(isAppPage(`${APP}#/snapshots`, APP)).toBe(true);
    expect(isAppPage(`${APP}?x=1`, APP)).toBe(false);
    expect(isAppPage('file:///etc/passwd', APP)).toBe(false);
    expect(isAppPage('https://example.com/', APP)).toBe(false);
    expect(isAppPage('not a url', APP)).toBe(false);
  });

  it('blocks navigation away from the app; https goes to the system browser', () => {
    const opened: string[] = [];
    const guard = navigationGuard(APP, (url) => {
      opened.push(url);
    });
    const attempt = (url: string): boolean => {
      let prevented = false;
      guard({ preventDefault: () => (prevented = true) }, url);
      return prevented;
    };
    expect(attempt(`${APP}#/devices`)).toBe(false);
    expect(attempt('https://github.com/veeam/blksnap')).toBe(true);
    expect(attempt('http://example.com/')).toBe(true);
    expect(attempt('file:///etc/passwd')).toBe(true);
    expect(attempt('javascript:alert(1)')).toBe(true);
    expect(attempt('data:text/html,<script>x</script>')).toBe(true);
    expect(opened).toEqual(['https://github.com/veeam/blksnap']);
  });

  it('denies window.open always; https links open externally', () => {
    const opened: string[] = [];
    const handler = windowOpenHandler((url) => {
      opened.push(url);
    });
    const details = (url: string) => ({ url }) as Parameters<typeof handler>[0];
    expect(handler(details('https://example.com/doc'))).toEqual({ action: 'deny' });
    expect(handler(details('file:///etc/passwd'))).toEqual({ action: 'deny' });
    expect(handler(details(APP))).toEqual({ action: 'deny' });
    expect(handler(details('mailto:a@b.c'))).toEqual({ action: 'deny' });
    expect(opened).toEqual(['https://example.com/doc']);
  });

  it('installs the guards on the window contents', () => {
    const on = vi.fn();
    const setWindowOpenHandler = vi.fn();
    installNavigationGuards({ on, setWindowOpenHandler } as unknown as WebContents, APP, () => {});
    expect(on.mock.calls.map((c) => c[0])).toEqual(expect.arrayContaining(['will-navigate', 'will-redirect', 'will-attach-webview']));
    expect(setWindowOpenHandler).toHaveBeenCalledTimes(1);
    const webview = on.mock.calls.find((c) => c[0] === 'will-attach-webview')?.[1] as (e: { preventDefault(): void }) => void;
    const preventDefault = vi.fn();
    webview({ preventDefault });
    expect(preventDefault).toHaveBeenCalled();
  });

  it('denies every permission request and check', () => {
    let request: ((wc: unknown, permission: string, cb: (granted: boolean) => void) => void) | null = null;
    let check: (() => boolean) | null = null;
    let device: (() => boolean) | null = null;
    const session = {
      setPermissionRequestHandler: (h: typeof request) => (request = h),
      setPermissionCheckHandler: (h: typeof check) => (check = h),
      setDevicePermissionHandler: (h: typeof device) => (device = h),
    } as unknown as Session;
    installPermissionGuards(session);
    for (const permission of ['media', 'geolocation', 'notifications', 'clipboard-read', 'openExternal']) {
      const cb = vi.fn();
      request!({}, permission, cb);
      expect(cb).toHaveBeenCalledWith(false);
    }
    expect(check!()).toBe(false);
    expect(device!()).toBe(false);
  });
});
