import { describe, expect, it } from 'vitest';
import { docExamples } from './doc-examples.js';

const fence = '```';

describe('runnable examples of a documentation page', () => {
  it('takes the $ lines of console blocks and every line of sh blocks, in order, with their page lines', () => {
    const page = [
      '# Title', //                                 1
      `${fence}sh`, //                              2
      '# a comment', //                             3
      'mkdir -p demo', //                           4
      '', //                                        5
      `${fence}`, //                                6
      `${fence}console`, //                         7
      '$ blksnap-manager version', //               8
      '2.0.0.0', //                                 9
      '$ blksnap-manager daemon --socket s \\', // 10
      '    --driver embedded', //                  11
      `${fence}`, //                               12
      `${fence}`, //                               13
      '$ blksnap-manager not-run', //              14
      `${fence}`, //                               15
      `${fence}text`, //                           16
      'echo not run', //                           17
      `${fence}`, //                               18
    ].join('\n');
    expect(docExamples(page)).toEqual([
      { text: 'mkdir -p demo', line: 4, expectErrno: null },
      { text: 'blksnap-manager version', line: 8, expectErrno: null },
      { text: 'blksnap-manager daemon --socket s \\\n    --driver embedded', line: 10, expectErrno: null },
    ]);
  });

  it('expects the errno of a "blksnap-manager: ERRNO:" line right under a command, only there', () => {
    const page = [
      `${fence}console`,
      '$ blksnap-manager backup -i $ID -o backup',
      'blksnap-manager: EEXIST: backup/disk1 already holds a backup chain',
      '$ blksnap-manager catalog backup',
      'CHAIN  POINT',
      'blksnap-manager: EIO: not the first output line',
      `${fence}`,
    ].join('\n');
    expect(docExamples(page).map((c) => c.expectErrno)).toEqual(['EEXIST', null]);
  });

  it('refuses a page whose block or command does not end', () => {
    expect(() => docExamples(`${fence}console\n$ a \\\n${fence}\n`)).toThrow(/line 2: the command continues past the end of its block/);
    expect(() => docExamples(`${fence}sh\nls\n`)).toThrow(/ends inside a code block/);
  });
});
