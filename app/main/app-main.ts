/**
 * The Electron main process: one sandboxed window on the renderer, the contract over
 * IPC to the bridge (which connects to the helper or starts it: directly in
 * development, through pkexec when packaged), desktop notifications.
 */
import { BrowserWindow, Notification, app, ipcMain, session, shell } from 'electron';
import type { WebContents } from 'electron';
import { join } from 'node:path';
import { createBridge } from '../bridge/bridge.js';
import type { Bridge } from '../bridge/bridge.js';
import { PACKAGED_STATE_DIR, helperLaunchCommand, packagedSocketPath } from '../bridge/launch.js';
import { defaultSocketPath, defaultStateDir } from '../bridge/paths.js';
import { forwardEvents, registerIpcHandlers } from './ipc.js';
import { helperStateNotification, jobNotification, longJobNotification, snapshotEventNotification, workloadNotification } from './notifications.js';
import type { NotificationText } from './notifications.js';
import { escapeControlChars } from '../shared/control-chars.js';
import { appPaths } from './paths.js';
import { installCsp, installNavigationGuards, installPermissionGuards, windowOpenHandler } from './security.js';
import { windowOptions } from './window-options.js';

export function createMainWindow(preload: string, indexPath: string, indexUrl: string): BrowserWindow {
  const window = new BrowserWindow(windowOptions(preload));
  installNavigationGuards(window.webContents, indexUrl, (url) => shell.openExternal(url));
  window.once('ready-to-show', () => window.show());
  void window.loadFile(indexPath);
  return window;
}

function notify(text: NotificationText | null, window: BrowserWindow | null, onlyUnfocused = false): void {
  if (text === null || !Notification.isSupported()) return;
  if (onlyUnfocused && window !== null && !window.isDestroyed() && window.isFocused()) return;
  new Notification({ title: text.title, body: text.body, urgency: text.urgency }).show();
}

export function createAppBridge(appDir: string): Bridge {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const userState = defaultStateDir();
  // Packaged, the installed launcher fixes the socket and state directory (see launch.ts).
  const socketPath = app.isPackaged ? packagedSocketPath(uid) : defaultSocketPath();
  const helperState = app.isPackaged ? PACKAGED_STATE_DIR : userState;
  return createBridge({
    socketPath,
    launch: helperLaunchCommand({
      packaged: app.isPackaged,
      resourcesPath: process.resourcesPath,
      uid,
      socketPath,
      stateDir: helperState,
      execPath: process.execPath,
      projectRoot: appDir,
    }),
    logPath: join(userState, 'helper.log'),
    appVersion: app.getVersion(),
    labDir: join(userState, 'lab'),
    clientName: 'blksnap-manager-electron',
    // pkexec waits for the user at the polkit prompt
    startTimeoutMs: app.isPackaged ? 120_000 : 30_000,
  });
}

export function startApp(): void {
  app.enableSandbox();
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  let window: BrowserWindow | null = null;
  const contents = (): WebContents | null => (window === null || window.isDestroyed() ? null : window.webContents);

  // Defense in depth: whatever webContents appears, it may not open windows or attach webviews.
  app.on('web-contents-created', (_event, created) => {
    created.setWindowOpenHandler(windowOpenHandler((url) => shell.openExternal(url)));
    created.on('will-attach-webview', (event) => event.preventDefault());
  });
  app.on('second-instance', () => {
    if (window !== null && !window.isDestroyed()) {
      if (window.isMinimized()) window.restore();
      window.focus();
    }
  });

  void app.whenReady().then(() => {
    const appDir = app.getAppPath();
    const paths = appPaths(appDir);
    installCsp(session.defaultSession);
    installPermissionGuards(session.defaultSession);
    const bridge = createAppBridge(appDir);
    registerIpcHandlers(ipcMain, bridge.api, {
      appUrl: paths.indexUrl,
      contents,
      onRequestDone: (method, result, ms) => notify(longJobNotification(method, result, ms), window, true),
      log: (line) => process.stderr.write(`blksnap-manager: ${escapeControlChars(line)}\n`),
    });
    forwardEvents(bridge.api, contents);
    bridge.api.onSnapshotEvent((event) => notify(snapshotEventNotification(event), window));
    bridge.api.onWorkloadProgress((progress) => notify(workloadNotification(progress), window));
    bridge.api.onHelperState((state) => notify(helperStateNotification(state), window));
    bridge.api.onJob((job) => notify(jobNotification(job), window, true));
    window = createMainWindow(paths.preload, paths.index, paths.indexUrl);
    void bridge.start();
    app.on('window-all-closed', () => {
      bridge.close();
      app.quit();
    });
  });
}
