/**
 * The TS layout and ioctl constants against the C compiler: the uapi headers are
 * cut out of the spec patches at test time (seed 000 blksnap.h; seed 001
 * blk-filter.h and its fs.h BLKFILTER_* hunk), a C program printing every
 * sizeof/offsetof/ioctl number is compiled with `cc` and its output compared.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BLKFILTER_CTL_BLKSNAP,
  BLKFILTER_NAME_LENGTH,
  BLKSNAP_CTL,
  BLKSNAP_EVENT_CODE,
  BLKSNAP_IMAGE_NAME,
  IMAGE_DISK_NAME_LEN,
  LAYOUT,
  UUID_SIZE,
} from '../../../engine/kernel/abi-structs.js';
import { IOCTL_NUMBERS } from '../../../engine/kernel/ioctl-numbers.js';
import { hasCommand } from '../../helpers/env.js';
import { fileURLToPath } from 'node:url';

/** The spec patches: `../shared/seeds` beside the repository (as on CI), or $BLKSNAP_SEEDS. */
const SEEDS = process.env.BLKSNAP_SEEDS ?? fileURLToPath(new URL('../../../../shared/seeds', import.meta.url));

function seed(prefix: string): string {
  const file = readdirSync(SEEDS).find((f) => f.startsWith(prefix) && f.endsWith('.txt'));
  if (!file) throw new Error(`seed ${prefix} not found in ${SEEDS}`);
  return readFileSync(join(SEEDS, file), 'utf8');
}

/** The added lines of the first hunk creating `path` in a patch, without the leading '+'. */
function extractNewFile(patch: string, path: string): string {
  const lines = patch.split('\n');
  const start = lines.findIndex((l) => l === `+++ b/${path}`);
  if (start < 0) throw new Error(`${path} not in patch`);
  const out: string[] = [];
  for (let i = start + 2; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (!line.startsWith('+')) break;
    out.push(line.slice(1));
  }
  return `${out.join('\n')}\n`;
}

/** Field names of `struct name { ... };` in header text. */
function structFields(header: string, name: string): string[] {
  const m = new RegExp(`struct ${name} \\{([^}]*)\\};`).exec(header);
  if (!m?.[1]) throw new Error(`struct ${name} not in header`);
  return [...m[1].matchAll(/(\w+)\s*(?:\[[^\]]*\])?\s*;/g)].map((f) => f[1] ?? '');
}

const seedsPresent = (() => {
  try {
    readdirSync(SEEDS);
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!seedsPresent)('uapi headers from the spec patches', () => {
  const blksnapH = seedsPresent ? extractNewFile(seed('000_'), 'include/uapi/linux/blksnap.h') : '';
  const blkfilterH = seedsPresent ? extractNewFile(seed('001_'), 'include/uapi/linux/blk-filter.h') : '';

  it('every struct of blksnap.h and blk-filter.h has exactly the fields of LAYOUT', () => {
    const inHeaders = [...`${blksnapH}${blkfilterH}`.matchAll(/^struct (\w+) \{/gm)].map((m) => m[1] ?? '');
    expect(inHeaders.length).toBe(14);
    for (const name of inHeaders) {
      expect(Object.keys(LAYOUT), name).toContain(name);
      const header = name.startsWith('blkfilter') ? blkfilterH : blksnapH;
      expect(structFields(header, name), name).toEqual(Object.keys(LAYOUT[name as keyof typeof LAYOUT].fields));
    }
  });

  it('the ioctl enum of v6 has no append_storage (numbering differs from v5)', () => {
    expect(blksnapH).toMatch(/blksnap_ioctl_snapshot_destroy,\s*blksnap_ioctl_snapshot_take,/);
    expect(blksnapH).not.toMatch(/append_storage/);
  });
});

describe.skipIf(!seedsPresent)('C compiler check of sizes, offsets and ioctl numbers', () => {
  let dir = '';
  let values = new Map<string, string>();

  // The no_space body is not in the v6 header: newer modules send a __u64
  // requested_nr_sect, the layout of v5's blksnap_event_low_free_space.
  const extraStructs = 'struct blksnap_event_no_space { __u64 requested_nr_sect; };\n';
  /** The added lines of the include/uapi/linux/fs.h hunk (BLKFILTER_ATTACH/DETACH/CTL). */
  const fsHunk = (): string => {
    const lines = seed('001_').split('\n');
    const start = lines.indexOf('+++ b/include/uapi/linux/fs.h');
    const out: string[] = [];
    for (let i = start + 1; i < lines.length && !(lines[i] ?? '').startsWith('--'); i++) {
      const line = lines[i] ?? '';
      if (line.startsWith('+')) out.push(line.slice(1));
    }
    return out.join('\n');
  };

  beforeAll(() => {
    if (!hasCommand('cc')) return;
    dir = mkdtempSync(join(tmpdir(), 'blksnap-abi-'));
    writeFileSync(join(dir, 'blksnap.h'), extractNewFile(seed('000_'), 'include/uapi/linux/blksnap.h'));
    writeFileSync(join(dir, 'blk-filter.h'), extractNewFile(seed('001_'), 'include/uapi/linux/blk-filter.h'));
    const prints: string[] = [];
    for (const [struct, layout] of Object.entries(LAYOUT)) {
      prints.push(`P("sizeof.${struct}", sizeof(struct ${struct}));`);
      for (const field of Object.keys(layout.fields)) {
        prints.push(`P("offsetof.${struct}.${field}", offsetof(struct ${struct}, ${field}));`);
      }
    }
    for (const name of Object.keys(IOCTL_NUMBERS)) prints.push(`P("ioctl.${name}", (unsigned long)(${name}));`);
    for (const [name, value] of Object.entries(BLKFILTER_CTL_BLKSNAP)) {
      prints.push(`P("enum.blkfilter_ctl_blksnap_${name}", blkfilter_ctl_blksnap_${name}); (void)${value};`);
    }
    prints.push('P("enum.blksnap_event_code_corrupted", blksnap_event_code_corrupted);');
    prints.push('P("const.UUID_SIZE", UUID_SIZE);');
    prints.push('P("const.IMAGE_DISK_NAME_LEN", IMAGE_DISK_NAME_LEN);');
    prints.push('P("const.BLKFILTER_NAME_LENGTH", BLKFILTER_NAME_LENGTH);');
    prints.push('printf("str.BLKSNAP_CTL %s\\n", BLKSNAP_CTL);');
    prints.push('printf("str.BLKSNAP_IMAGE_NAME %s\\n", BLKSNAP_IMAGE_NAME);');
    const program = [
      '#include <stdio.h>',
      '#include <stddef.h>',
      '#include <linux/types.h>',
      '#include <linux/ioctl.h>',
      '#include <linux/fs.h>',
      '#include "blksnap.h"',
      '#include "blk-filter.h"',
      fsHunk(),
      extraStructs,
      '#define P(k, v) printf("%s %lu\\n", k, (unsigned long)(v))',
      'int main(void) {',
      ...prints.map((p) => `  ${p}`),
      '  return 0;',
      '}',
    ].join('\n');
    writeFileSync(join(dir, 'abi.c'), program);
    execFileSync('cc', ['-Wall', '-Werror', '-o', join(dir, 'abi'), join(dir, 'abi.c')], { cwd: dir });
    const output = execFileSync(join(dir, 'abi'), { encoding: 'utf8' });
    values = new Map(
      output
        .trim()
        .split('\n')
        .map((line) => {
          const space = line.indexOf(' ');
          return [line.slice(0, space), line.slice(space + 1)] as [string, string];
        }),
    );
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!hasCommand('cc'))('[cc] sizeof and offsetof of every struct and field match LAYOUT', () => {
    let checked = 0;
    for (const [struct, layout] of Object.entries(LAYOUT)) {
      expect(Number(values.get(`sizeof.${struct}`)), `sizeof(struct ${struct})`).toBe(layout.size);
      for (const [field, offset] of Object.entries(layout.fields)) {
        expect(Number(values.get(`offsetof.${struct}.${field}`)), `offsetof(${struct}, ${field})`).toBe(offset);
        checked++;
      }
    }
    expect(checked).toBe(39);
  });

  it.skipIf(!hasCommand('cc'))('[cc] every ioctl number matches the C macro', () => {
    for (const [name, value] of Object.entries(IOCTL_NUMBERS)) {
      expect(Number(values.get(`ioctl.${name}`)), name).toBe(value);
    }
  });

  it.skipIf(!hasCommand('cc'))('[cc] enums and constants match', () => {
    for (const [name, value] of Object.entries(BLKFILTER_CTL_BLKSNAP)) {
      expect(Number(values.get(`enum.blkfilter_ctl_blksnap_${name}`)), name).toBe(value);
    }
    expect(Number(values.get('enum.blksnap_event_code_corrupted'))).toBe(BLKSNAP_EVENT_CODE.corrupted);
    expect(Number(values.get('const.UUID_SIZE'))).toBe(UUID_SIZE);
    expect(Number(values.get('const.IMAGE_DISK_NAME_LEN'))).toBe(IMAGE_DISK_NAME_LEN);
    expect(Number(values.get('const.BLKFILTER_NAME_LENGTH'))).toBe(BLKFILTER_NAME_LENGTH);
    expect(values.get('str.BLKSNAP_CTL')).toBe(BLKSNAP_CTL);
    expect(values.get('str.BLKSNAP_IMAGE_NAME')).toBe(BLKSNAP_IMAGE_NAME);
  });
});
