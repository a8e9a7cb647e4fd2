/** Where the app's files are, from the app directory (app.getAppPath(): the repo in development, app.asar packaged). */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface AppPaths {
  preload: string;
  index: string;
  /** file:// URL of the renderer's index.html: the only page IPC answers. */
  indexUrl: string;
}

export function appPaths(appDir: string): AppPaths {
  const index = join(appDir, 'renderer', 'dist', 'index.html');
  return {
    preload: join(appDir, 'dist', 'app', 'preload', 'preload.js'),
    index,
    indexUrl: pathToFileURL(index).toString(),
  };
}
