/**
 * The VAL-7.0 and lk6.15 tables of the driver (dialects.ts, dialect-structs.ts and
 * the structs all dialects share in abi-structs.ts) against the C compiler: the
 * VAL-7.0 uapi headers from ../shared/peers (compiled with BLKSNAP_MODIFICATION, as
 * the module is built) and the lk6.15 ones cut out of its patch set; a program
 * printing every sizeof/offsetof/ioctl number is compiled with `cc` and compared.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { LAYOUT } from '../../../engine/kernel/abi-structs.js';
import { DIALECT_LAYOUT } from '../../../engine/kernel/dialect-structs.js';
import {
  DIALECTS,
  LK615_BLKFILTER_ATTACH,
  LK615_BLKFILTER_CTL,
  LK615_BLKFILTER_DETACH,
  VAL7_BDEVFILTER_ATTACH,
  VAL7_BDEVFILTER_CTL,
  VAL7_BDEVFILTER_DETACH,
  VAL7_IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE,
} from '../../../engine/kernel/dialects.js';
import { IOCTL_NUMBERS } from '../../../engine/kernel/ioctl-numbers.js';
import { hasCommand } from '../../helpers/env.js';

/** ../shared/peers beside the repository, or $BLKSNAP_PEERS. */
const PEERS = process.env.BLKSNAP_PEERS ?? fileURLToPath(new URL('../../../../shared/peers', import.meta.url));
const VAL7 = join(PEERS, 'veeamblksnap-VAL-7.0', 'include', 'linux');
const LK615 = join(PEERS, 'blksnap-lk6.15', 'patches', 'lk6.15');
const havePeers = existsSync(VAL7) && existsSync(LK615);
const canCompile = havePeers && hasCommand('cc');

/** The '+' lines of the hunks of `path` in a patch (a new file, or additions to one). */
function addedLines(patch: string, path: string): string {
  const lines = patch.split('\n');
  const start = lines.indexOf(`+++ b/${path}`);
  if (start < 0) throw new Error(`${path} not in patch`);
  const out: string[] = [];
  for (let i = start + 1; i < lines.length && !(lines[i] ?? '').startsWith('diff --git'); i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('+')) out.push(line.slice(1));
  }
  return `${out.join('\n')}\n`;
}

function patch(prefix: string): string {
  const name = ['0001-the-block-device-filtering-mechanism.patch', '0002-the-block-devices-snapshots-module-blksnap.patch'].find((f) =>
    f.startsWith(prefix),
  );
  return readFileSync(join(LK615, name ?? ''), 'utf8');
}

type Layout = { size: number; fields: Record<string, number> };

/** C struct name -> the driver's table for it. */
const SHARED: Record<string, Layout> = {
  blksnap_uuid: LAYOUT.blksnap_uuid,
  blksnap_cbtinfo: LAYOUT.blksnap_cbtinfo,
  blksnap_cbtmap: LAYOUT.blksnap_cbtmap,
  blksnap_sectors: LAYOUT.blksnap_sectors,
  blksnap_cbtdirty: LAYOUT.blksnap_cbtdirty,
  blksnap_snapshotadd: LAYOUT.blksnap_snapshotadd,
  blksnap_snapshotinfo: LAYOUT.blksnap_snapshotinfo,
  blksnap_version: LAYOUT.blksnap_version,
  blksnap_snapshot_collect: LAYOUT.blksnap_snapshot_collect,
  blksnap_snapshot_event: LAYOUT.blksnap_snapshot_event,
  blksnap_event_corrupted: LAYOUT.blksnap_event_corrupted,
  blksnap_snapshot_create: DIALECT_LAYOUT.blksnap_snapshot_create_path,
};

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Compiles `includes` + prints of every struct/field/macro, returns name -> value. */
function compile(setup: (dir: string) => string[], structs: Record<string, Layout>, macros: string[], strings: string[], defines: string[] = []): Map<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'blksnap-dialect-abi-'));
  dirs.push(dir);
  const includes = setup(dir);
  const prints: string[] = [];
  for (const [struct, layout] of Object.entries(structs)) {
    prints.push(`P("sizeof.${struct}", sizeof(struct ${struct}));`);
    for (const field of Object.keys(layout.fields)) prints.push(`P("offsetof.${struct}.${field}", offsetof(struct ${struct}, ${field}));`);
  }
  for (const m of macros) prints.push(`P("macro.${m}", (unsigned long)(${m}));`);
  for (const s of strings) prints.push(`printf("str.${s} %s\\n", ${s});`);
  const program = [
    '#include <stdio.h>',
    '#include <stddef.h>',
    '#include <linux/types.h>',
    '#include <linux/ioctl.h>',
    ...includes,
    '#define P(k, v) printf("%s %lu\\n", k, (unsigned long)(v))',
    'int main(void) {',
    ...prints.map((p) => `  ${p}`),
    '  return 0;',
    '}',
  ].join('\n');
  writeFileSync(join(dir, 'abi.c'), program);
  execFileSync('cc', ['-Wall', '-Werror', ...defines, '-I', dir, '-o', join(dir, 'abi'), join(dir, 'abi.c')], { cwd: dir });
  const output = execFileSync(join(dir, 'abi'), { encoding: 'utf8' });
  return new Map(
    output
      .trim()
      .split('\n')
      .map((line) => [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)] as [string, string]),
  );
}

function expectLayouts(values: Map<string, string>, structs: Record<string, Layout>): number {
  let checked = 0;
  for (const [struct, layout] of Object.entries(structs)) {
    expect(Number(values.get(`sizeof.${struct}`)), `sizeof(struct ${struct})`).toBe(layout.size);
    for (const [field, offset] of Object.entries(layout.fields)) {
      expect(Number(values.get(`offsetof.${struct}.${field}`)), `offsetof(${struct}, ${field})`).toBe(offset);
      checked++;
    }
  }
  return checked;
}

describe.skipIf(!canCompile)('[cc] VAL-7.0 headers (veeamblksnap.h, bdevfilter.h) against the val7 tables', () => {
  const structs: Record<string, Layout> = {
    ...SHARED,
    blksnap_snapshot_append_storage: DIALECT_LAYOUT.blksnap_snapshot_append_storage,
    blksnap_mod: DIALECT_LAYOUT.blksnap_mod,
    blksnap_event_low_free_space: LAYOUT.blksnap_event_no_space,
    bdevfilter_name: DIALECT_LAYOUT.bdevfilter_name,
    bdevfilter_ctl: DIALECT_LAYOUT.bdevfilter_ctl,
  };
  const values = canCompile
    ? compile(
        (dir) => {
          copyFileSync(join(VAL7, 'veeamblksnap.h'), join(dir, 'veeamblksnap.h'));
          copyFileSync(join(VAL7, 'bdevfilter.h'), join(dir, 'bdevfilter.h'));
          // the header's static_assert is the C11 macro of <assert.h>
          return ['#include <assert.h>', '#include "veeamblksnap.h"', '#include "bdevfilter.h"'];
        },
        structs,
        [
          'IOCTL_BLKSNAP_VERSION',
          'IOCTL_BLKSNAP_SNAPSHOT_CREATE',
          'IOCTL_BLKSNAP_SNAPSHOT_DESTROY',
          'IOCTL_BLKSNAP_SNAPSHOT_TAKE',
          'IOCTL_BLKSNAP_SNAPSHOT_COLLECT',
          'IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT',
          'IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE',
          'BDEVFILTER_ATTACH',
          'BDEVFILTER_DETACH',
          'BDEVFILTER_CTL',
          'blksnap_event_code_low_free_space',
        ],
        ['BLKSNAP_CTL', 'BLKSNAP_IMAGE_NAME'],
        ['-DBLKSNAP_MODIFICATION'],
      )
    : new Map<string, string>();

  it('sizes and offsets match', () => {
    expect(expectLayouts(values, structs)).toBe(47);
  });

  it('request numbers, event code 1 and device names match the val7 dialect', () => {
    const d = DIALECTS.val7;
    for (const name of ['VERSION', 'SNAPSHOT_DESTROY', 'SNAPSHOT_TAKE', 'SNAPSHOT_COLLECT', 'SNAPSHOT_WAIT_EVENT'] as const) {
      expect(Number(values.get(`macro.IOCTL_BLKSNAP_${name}`)), name).toBe(IOCTL_NUMBERS[`IOCTL_BLKSNAP_${name}`]);
    }
    expect(Number(values.get('macro.IOCTL_BLKSNAP_SNAPSHOT_CREATE'))).toBe(d.createRequest);
    expect(Number(values.get('macro.IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE'))).toBe(VAL7_IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE);
    expect(Number(values.get('macro.BDEVFILTER_ATTACH'))).toBe(VAL7_BDEVFILTER_ATTACH);
    expect(Number(values.get('macro.BDEVFILTER_DETACH'))).toBe(VAL7_BDEVFILTER_DETACH);
    expect(Number(values.get('macro.BDEVFILTER_CTL'))).toBe(VAL7_BDEVFILTER_CTL);
    expect(Number(values.get('macro.blksnap_event_code_low_free_space'))).toBe(1);
    expect(d.eventCode1).toBe('low_free_space');
    expect(`/dev/${values.get('str.BLKSNAP_CTL')}`).toBe(d.controlPath);
    expect(d.imageDiskName(254, 0)).toBe(`${values.get('str.BLKSNAP_IMAGE_NAME')}_254:0`);
  });
});

describe.skipIf(!canCompile)('[cc] lk6.15 headers (blksnap.h, blk-filter.h, fs.h hunk) against the lk6.15 tables', () => {
  const structs: Record<string, Layout> = {
    ...SHARED,
    blkfilter_attach: DIALECT_LAYOUT.blkfilter_attach,
    blkfilter_detach: DIALECT_LAYOUT.blkfilter_detach,
    blkfilter_ctl: LAYOUT.blkfilter_ctl,
    blksnap_event_no_space: LAYOUT.blksnap_event_no_space,
  };
  const values = canCompile
    ? compile(
        (dir) => {
          writeFileSync(join(dir, 'blksnap.h'), addedLines(patch('0002'), 'include/uapi/linux/blksnap.h'));
          writeFileSync(join(dir, 'blk-filter.h'), addedLines(patch('0001'), 'include/uapi/linux/blk-filter.h'));
          return ['#include <linux/fs.h>', '#include "blksnap.h"', '#include "blk-filter.h"', addedLines(patch('0001'), 'include/uapi/linux/fs.h')];
        },
        structs,
        ['IOCTL_BLKSNAP_SNAPSHOT_CREATE', 'BLKFILTER_ATTACH', 'BLKFILTER_DETACH', 'BLKFILTER_CTL', 'blksnap_event_code_no_space'],
        ['BLKSNAP_CTL', 'BLKSNAP_IMAGE_NAME'],
      )
    : new Map<string, string>();

  it('sizes and offsets match', () => {
    expect(expectLayouts(values, structs)).toBe(42);
  });

  it('request numbers, event code 1 and device names match the lk6.15 dialect', () => {
    const d = DIALECTS['lk6.15'];
    expect(Number(values.get('macro.IOCTL_BLKSNAP_SNAPSHOT_CREATE'))).toBe(d.createRequest);
    expect(Number(values.get('macro.BLKFILTER_ATTACH'))).toBe(LK615_BLKFILTER_ATTACH);
    expect(Number(values.get('macro.BLKFILTER_DETACH'))).toBe(LK615_BLKFILTER_DETACH);
    expect(Number(values.get('macro.BLKFILTER_CTL'))).toBe(LK615_BLKFILTER_CTL);
    // the collision the detection must avoid: lk6.15's ATTACH is v6's CTL
    expect(Number(values.get('macro.BLKFILTER_ATTACH'))).toBe(IOCTL_NUMBERS.BLKFILTER_CTL);
    expect(Number(values.get('macro.blksnap_event_code_no_space'))).toBe(1);
    expect(`/dev/${values.get('str.BLKSNAP_CTL')}`).toBe(d.controlPath);
    expect(d.imageDiskName(254, 0)).toBe(`${values.get('str.BLKSNAP_IMAGE_NAME')}-254-0`);
  });
});
