/**
 * `node dist/app/web/main.js [--port N] [--socket PATH] [--state-dir DIR] [--static DIR]`
 * (what `npm start` runs without Electron): browser mode on 127.0.0.1. Starts a helper
 * (embedded engine) when none runs, prints the URL to open (with its token) on stdout;
 * request logs go to stderr without query strings. See docs/browser-mode.md.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { helperNotes } from '../bridge/helper-notes.js';
import { defaultSocketPath, defaultStateDir, findProjectRoot } from '../bridge/paths.js';
import { escapeControlChars } from '../shared/control-chars.js';
import { startWebServer } from './server.js';

function fail(message: string): never {
  process.stderr.write(`blksnap-manager (browser mode): ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      socket: { type: 'string' },
      'state-dir': { type: 'string' },
      static: { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
    },
  });
  let port = 0;
  if (values.port !== undefined) {
    if (!/^\d+$/.test(values.port) || Number(values.port) > 65535) fail(`--port must be a number 0..65535, got "${values.port}"`);
    port = Number(values.port);
  }
  const root = findProjectRoot(import.meta.dirname);
  const staticDir = values.static ?? (root === null ? 'renderer/dist' : join(root, 'renderer', 'dist'));
  if (!existsSync(join(staticDir, 'index.html'))) {
    process.stderr.write(
      `warning: ${staticDir}/index.html is missing; build the UI with: npx vite build --config renderer/vite.config.ts\n`,
    );
  }
  const quiet = values.quiet === true;
  const log = (line: string): void => {
    if (!quiet) process.stderr.write(`${new Date().toISOString()} ${escapeControlChars(line)}\n`);
  };
  const socketPath = values.socket ?? defaultSocketPath();
  const stateDir = values['state-dir'] ?? defaultStateDir();
  const server = await startWebServer({ port, staticDir, log, helperSocket: socketPath, stateDir });
  const notes = helperNotes({ socketPath, stateDir, defaultSocket: socketPath === defaultSocketPath() }).join('\n');
  server.bridge?.link.onState((state) => log(`helper: ${state.state}${state.message === undefined ? '' : ` (${state.message})`}`));
  process.stdout.write(`Blksnap Manager (browser mode) is listening on 127.0.0.1:${server.port}.\nOpen this URL in a browser on this machine:\n\n  ${server.url}\n\n`);
  process.stdout.write(`The URL carries the access token: do not share it. Stop with Ctrl+C.\n\n${notes}\n`);
  const stop = (): void => {
    process.stdout.write(`\nStopped browser mode. ${notes}\n`);
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
