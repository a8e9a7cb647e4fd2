/**
 * How tests run the blksnap-manager command (the CLI and `daemon`): the way an
 * administrator does, through bin/blksnap-manager.mjs. It runs the built dist/ when
 * that is up to date with every engine source (after `npm run build`, as in
 * `npm test`: a third of the start-up cost) and the sources through tsx otherwise,
 * so a test never runs a stale build.
 */
import { join } from 'node:path';
import { PROJECT_ROOT } from './renderer-build.js';

export const CLI_BIN = join(PROJECT_ROOT, 'bin', 'blksnap-manager.mjs');
