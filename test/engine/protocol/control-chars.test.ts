import { describe, expect, it } from 'vitest';
import { escapeControlChars, findControlChar } from '../../../engine/protocol/control-chars.js';
import { methods } from '../../../engine/protocol/methods.js';
import { describeIssues } from '../../../engine/protocol/messages.js';

describe('escapeControlChars', () => {
  it('shows C0, DEL and C1 controls visibly and leaves other text alone', () => {
    expect(escapeControlChars('a\nb')).toBe('a\\nb');
    expect(escapeControlChars('\x1b[31mred\x1b[0m')).toBe('\\x1b[31mred\\x1b[0m');
    expect(escapeControlChars('\t\r\0\x7f')).toBe('\\t\\r\\x00\\x7f');
    expect(escapeControlChars('x\u009by\u0085')).toBe('x\\u009by\\u0085');
    expect(escapeControlChars('/dev/disk/by-label/My\\x20Disk é ü')).toBe('/dev/disk/by-label/My\\x20Disk é ü');
    expect(escapeControlChars('')).toBe('');
  });

  it('finds the first control character with its position', () => {
    expect(findControlChar('/tmp/a\nb')).toEqual({ index: 6, escaped: '\\n' });
    expect(findControlChar('\u00a0ok')).toBeNull();
    expect(findControlChar('ok\u009f')).toEqual({ index: 2, escaped: '\\u009f' });
  });
});

describe('names and paths in helper params', () => {
  const cases: [keyof typeof methods, Record<string, unknown>, string][] = [
    ['images.add', { path: '/tmp/a\nb' }, 'path'],
    ['images.add', { path: '/tmp/\x1b[31m' }, 'path'],
    ['images.create', { path: '/tmp/x.img', size: 4096, name: 'a\nb' }, 'name'],
    ['images.remove', { image: '\x1b[31m' }, 'image'],
    ['snapshotCreate', { diffStoragePath: '/var/tmp/d\x1b[31m', limitSectors: 8 }, 'diffStoragePath'],
    ['snapshotCreate', { diffStoragePath: '/var/tmp/d', limitSectors: 8, devices: ['ok', 'a\nb'] }, 'devices.1'],
    ['snapshotAdd', { id: '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1', device: 'a\u0085b' }, 'device'],
    ['cbtInfo', { device: 'a\x7fb' }, 'device'],
    ['settings.set', { diffStorageDir: '/var/\ttmp' }, 'diffStorageDir'],
    ['hello', { protocolVersion: 1, client: 'cli\x1b]0;x\x07' }, 'client'],
  ];

  it.each(cases)('%s refuses a control character in %j, naming the field', (method, params, field) => {
    const r = methods[method].params.safeParse(params);
    expect(r.success).toBe(false);
    expect(r.error ? describeIssues(r.error) : 'accepted').toMatch(new RegExp(`(^|; )${field.replace('.', '\\.')}: contains the control character \\\\`));
  });

  it('accepts the same params without the control character', () => {
    expect(methods['images.add'].params.safeParse({ path: '/tmp/a b' }).success).toBe(true);
    expect(methods.snapshotCreate.params.safeParse({ diffStoragePath: '/var/tmp/d', limitSectors: 8, devices: ['ok', '/dev/sdb'] }).success).toBe(true);
    expect(methods['images.remove'].params.safeParse({ image: 'disk-é' }).success).toBe(true);
  });
});
