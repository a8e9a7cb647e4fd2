/**
 * The runnable examples of a documentation page (the convention at the top of
 * docs/cli.md):
 * - a ```console block is a transcript: a line starting with "$ " is a command (a
 *   line ending in "\" continues it on the next line), the other lines are its output;
 *   when the first output line is "blksnap-manager: ERRNO: ...", the command is
 *   expected to fail with that errno;
 * - a ```sh block is commands only, one per line ("\" continues; # comments and
 *   blank lines are skipped);
 * - other blocks (no language, ```text, ...) are not run.
 */
import { isErrnoName } from '../../engine/abi/errno.js';
import type { ErrnoName } from '../../engine/abi/errno.js';

export interface DocCommand {
  /** The command as bash runs it (continuation lines joined by newlines). */
  text: string;
  /** Its first line in the page (1-based). */
  line: number;
  /** The errno the page says it fails with, or null for success. */
  expectErrno: ErrnoName | null;
}

const FENCE = /^```(\S*)/;
const FAILURE = /^blksnap-manager: ([A-Z][A-Z0-9]*): /;

export function docExamples(markdown: string): DocCommand[] {
  const lines = markdown.split('\n');
  const commands: DocCommand[] = [];
  let kind: 'console' | 'sh' | 'other' | null = null;
  let current: DocCommand | null = null;
  let awaitingOutput: DocCommand | null = null;
  for (const [index, raw] of lines.entries()) {
    const fence = FENCE.exec(raw);
    if (fence !== null) {
      if (kind === null) kind = fence[1] === 'console' || fence[1] === 'sh' ? fence[1] : 'other';
      else {
        if (current !== null) throw new Error(`line ${current.line}: the command continues past the end of its block`);
        kind = null;
        awaitingOutput = null;
      }
      continue;
    }
    if (kind === null || kind === 'other') continue;
    if (current !== null) {
      current.text += `\n${raw}`;
      if (!raw.endsWith('\\')) current = null;
      continue;
    }
    let command: string | null = null;
    if (kind === 'console') {
      if (raw.startsWith('$ ')) command = raw.slice(2);
      else if (awaitingOutput !== null) {
        const failure = FAILURE.exec(raw);
        if (failure !== null && isErrnoName(failure[1])) awaitingOutput.expectErrno = failure[1];
        awaitingOutput = null;
      }
    } else if (raw.trim() !== '' && !raw.trimStart().startsWith('#')) command = raw;
    if (command === null) continue;
    const entry: DocCommand = { text: command, line: index + 1, expectErrno: null };
    commands.push(entry);
    awaitingOutput = entry;
    if (command.endsWith('\\')) current = entry;
  }
  if (kind !== null) throw new Error('the page ends inside a code block');
  return commands;
}
