/**
 * Finding where an engine device is mounted: nbdfuse command lines, then loop
 * devices over nbdfuse's file, then mountinfo (a fixture sysfs tree and mount
 * table, so no root is needed; the real chain is in take-freeze.test.ts).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mountsOfEngineDevices, nbdfuseProcesses, parseNbdfuseArgs } from '../../../engine/helper/freeze-detect.js';

const SOCK = '/run/user/1000/blksnap-manager/nbd.sock';

describe('parseNbdfuseArgs', () => {
  it('reads the file and the export of the URI forms, with options before', () => {
    expect(parseNbdfuseArgs(['nbdfuse', '/mnt/f', `nbd+unix:///disk1?socket=${SOCK}`])).toEqual({
      files: ['/mnt/f', '/mnt/f/nbd'],
      exportName: 'disk1',
      socket: SOCK,
    });
    expect(parseNbdfuseArgs(['nbdfuse', '-r', '-P', '/tmp/pid', '-o', 'allow_other', '/mnt/g/disk.raw', `nbd+unix:///my%20disk?socket=${SOCK}`])).toEqual({
      files: ['/mnt/g/disk.raw', '/mnt/g/disk.raw/nbd'],
      exportName: 'my disk',
      socket: SOCK,
    });
  });

  it('does not claim a TCP URI, a --unix or command form, or a malformed line', () => {
    expect(parseNbdfuseArgs(['nbdfuse', '/mnt/f', 'nbd://localhost/disk1'])).toBeNull();
    expect(parseNbdfuseArgs(['nbdfuse', '/mnt/f', '--unix', SOCK])).toBeNull();
    expect(parseNbdfuseArgs(['nbdfuse', '/mnt/f', '[', 'nbdkit', 'memory', '1G', ']'])).toBeNull();
    expect(parseNbdfuseArgs(['nbdfuse', '/mnt/f'])).toBeNull();
    expect(parseNbdfuseArgs(['nbdfuse', '/mnt/f', 'nbd+unix:///disk1'])).toBeNull();
  });
});

describe('nbdfuseProcesses', () => {
  it('finds nbdfuse by its name in /proc and resolves a relative mount point and socket against its working directory', () => {
    const proc = mkdtempSync(join(tmpdir(), 'bm-proc-'));
    try {
      for (const [pid, comm, argv] of [
        ['41', 'nbdfuse', ['nbdfuse', 'fuse', 'nbd+unix:///disk1?socket=run/nbd.sock']],
        ['42', 'bash', ['bash', 'fuse', `nbd+unix:///disk1?socket=${SOCK}`]],
      ] as const) {
        mkdirSync(join(proc, pid));
        writeFileSync(join(proc, pid, 'comm'), `${comm}\n`);
        writeFileSync(join(proc, pid, 'cmdline'), `${argv.join('\0')}\0`);
        symlinkSync('/srv/x', join(proc, pid, 'cwd'));
      }
      expect(nbdfuseProcesses(proc)).toEqual([{ pid: 41, files: ['/srv/x/fuse', '/srv/x/fuse/nbd'], exportName: 'disk1', socket: '/srv/x/run/nbd.sock' }]);
    } finally {
      rmSync(proc, { recursive: true, force: true });
    }
  });
});

describe('mountsOfEngineDevices', () => {
  let sys: string;

  beforeEach(() => {
    sys = mkdtempSync(join(tmpdir(), 'bm-sys-'));
    // loop3 over nbdfuse's file of disk1, with a partition loop3p1; loop4 over another file
    for (const [name, dev, backing] of [
      ['loop3', '7:3', '/mnt/f/nbd'],
      ['loop4', '7:4', '/var/tmp/other.img'],
    ] as const) {
      mkdirSync(join(sys, 'block', name, 'loop'), { recursive: true });
      mkdirSync(join(sys, 'block', name, 'holders'));
      writeFileSync(join(sys, 'block', name, 'dev'), `${dev}\n`);
      writeFileSync(join(sys, 'block', name, 'loop/backing_file'), `${backing}\n`);
      mkdirSync(join(sys, 'dev/block'), { recursive: true });
      symlinkSync(join(sys, 'block', name), join(sys, 'dev/block', dev));
    }
    mkdirSync(join(sys, 'block/loop3/loop3p1/holders'), { recursive: true });
    writeFileSync(join(sys, 'block/loop3/loop3p1/dev'), '259:0\n');
    writeFileSync(join(sys, 'block/loop3/loop3p1/partition'), '1\n');
    symlinkSync(join(sys, 'block/loop3/loop3p1'), join(sys, 'dev/block/259:0'));
  });
  afterEach(() => rmSync(sys, { recursive: true, force: true }));

  const mountinfo = [
    '25 1 259:0 / /srv/data rw,relatime shared:1 - ext4 /dev/loop3p1 rw',
    '26 1 7:4 / /srv/other rw,relatime shared:2 - ext4 /dev/loop4 rw',
    '27 1 0:50 / /mnt/f rw,nosuid,nodev - fuse.nbdfuse nbdfuse rw',
  ].join('\n');

  it('follows export -> nbdfuse -> loop -> partition mount, for this socket and these devices only', async () => {
    const nbdfuse = [
      { pid: 41, files: ['/mnt/f', '/mnt/f/nbd'], exportName: 'disk1', socket: SOCK },
      { pid: 42, files: ['/var/tmp/other.img', '/var/tmp/other.img/nbd'], exportName: 'disk2', socket: '/elsewhere/nbd.sock' },
    ];
    const sources = { sysRoot: sys, mountinfo, swaps: '', nbdfuse };
    expect(await mountsOfEngineDevices(['disk1', 'disk2'], SOCK, sources)).toEqual([
      { device: 'disk1', mountPoint: '/srv/data', via: 'nbdfuse 41 -> /mnt/f/nbd -> loop3p1' },
    ]);
    // another helper's socket, or a device not in the snapshot: nothing
    expect(await mountsOfEngineDevices(['disk1'], '/other/nbd.sock', sources)).toEqual([]);
    expect(await mountsOfEngineDevices(['disk3'], SOCK, sources)).toEqual([]);
  });
});
