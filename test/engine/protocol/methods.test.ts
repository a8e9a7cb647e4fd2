import { describe, expect, it } from 'vitest';
import { methods, notifications, isMethodName } from '../../../engine/protocol/methods.js';
import { MAX_CBT_MAP_LENGTH } from '../../../engine/protocol/limits.js';
import { LineSplitter, RequestSchema, ResponseSchema, describeIssues, errorBody } from '../../../engine/protocol/messages.js';

const ID = '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1';

describe('method table', () => {
  it('mirrors the driver and the manager operations', () => {
    for (const name of [
      'hello', 'version', 'snapshotCreate', 'snapshotDestroy', 'snapshotTake', 'snapshotCollect', 'snapshotWaitEvent',
      'attach', 'detach', 'cbtInfo', 'cbtMap', 'cbtDirty', 'snapshotAdd', 'snapshotInfo', 'storageInfo',
      'devices.list', 'images.create', 'images.add', 'images.list', 'images.remove', 'exports.list',
      'settings.get', 'settings.set', 'subscribe', 'unsubscribe',
    ]) {
      expect(isMethodName(name), name).toBe(true);
    }
    expect(isMethodName('toString')).toBe(false);
    expect(isMethodName('constructor')).toBe(false);
  });

  it('accepts valid params', () => {
    expect(methods.snapshotCreate.params.safeParse({ diffStoragePath: '/var/tmp/d', limitSectors: 2048, devices: ['disk1'] }).success).toBe(true);
    expect(methods.cbtMap.params.safeParse({ device: '/dev/sdb', offset: 0, length: MAX_CBT_MAP_LENGTH }).success).toBe(true);
    expect(methods.cbtMap.params.safeParse({ device: 'd', offset: 0, length: 1, table: 'active' }).success).toBe(true);
    expect(methods.cbtMap.params.safeParse({ device: 'd', offset: 0, length: 1, table: 'snapshot' }).success).toBe(true);
    expect(methods.cbtDirty.params.safeParse({ device: 'd', ranges: [{ offset: 0, count: 8 }] }).success).toBe(true);
    expect(methods.snapshotWaitEvent.params.safeParse({ id: ID, timeoutMs: 1000 }).success).toBe(true);
    expect(methods.version.params.safeParse({}).success).toBe(true);
    expect(methods['settings.set'].params.safeParse({ eventPollMs: 200 }).success).toBe(true);
  });

  it('rejects wrong types, unknown keys, relative paths and over-long requests', () => {
    const bad: [keyof typeof methods, unknown][] = [
      ['snapshotCreate', { diffStoragePath: 'relative/diff', limitSectors: 1 }],
      ['snapshotCreate', { diffStoragePath: '/x', limitSectors: '1G' }],
      ['snapshotCreate', { diffStoragePath: '/x', limitSectors: 0 }],
      ['snapshotTake', { id: 'not-a-uuid' }],
      ['snapshotTake', { id: ID, extra: 1 }],
      ['cbtMap', { device: 'd', offset: 0, length: MAX_CBT_MAP_LENGTH + 1 }],
      ['cbtMap', { device: 'd', offset: -1, length: 1 }],
      ['cbtMap', { device: 'd', offset: 0.5, length: 1 }],
      ['cbtMap', { device: 'd', offset: 0, length: 1, table: 'write' }],
      ['cbtDirty', { device: 'd', ranges: [] }],
      ['cbtDirty', { device: 'd', ranges: [{ offset: 0, count: 0 }] }],
      ['attach', { device: '' }],
      ['attach', {}],
      ['images.create', { path: '/x.img', size: 100 }],
      ['images.create', { path: '/x.img', size: 4096, name: '../evil' }],
      ['settings.set', { eventPollMs: 1 }],
      ['subscribe', { topics: ['nope'] }],
    ];
    for (const [method, params] of bad) {
      expect(methods[method].params.safeParse(params).success, `${method} ${JSON.stringify(params)}`).toBe(false);
    }
  });

  it('validates results and notifications', () => {
    expect(methods.snapshotInfo.result.safeParse({ errorCode: 0, image: 'blksnap-image0', nbdUri: 'nbd+unix:///x?socket=/s' }).success).toBe(true);
    expect(methods.snapshotInfo.result.safeParse({ errorCode: '0', image: '' }).success).toBe(false);
    const corrupted = { code: 'corrupted', snapshotId: ID, timeMs: 1, device: 'd', devMajor: 240, devMinor: 0, errCode: -28 };
    expect(notifications.event.safeParse(corrupted).success).toBe(true);
    expect(notifications.event.safeParse({ ...corrupted, code: 'exploded' }).success).toBe(false);
    expect(notifications.snapshot.safeParse({ id: ID, state: 'destroyed' }).success).toBe(true);
  });

  it('describes issues with their field paths', () => {
    const r = methods.cbtDirty.params.safeParse({ device: 'd', ranges: [{ offset: 'x', count: 1 }] });
    expect(r.success).toBe(false);
    if (!r.success) expect(describeIssues(r.error)).toMatch(/^ranges\.0\.offset: /);
  });
});

describe('envelopes', () => {
  it('parses requests and responses', () => {
    expect(RequestSchema.safeParse({ id: 1, method: 'version', params: {} }).success).toBe(true);
    expect(RequestSchema.safeParse({ id: 'a', method: 'version' }).success).toBe(true);
    expect(RequestSchema.safeParse({ method: 'version' }).success).toBe(false);
    expect(RequestSchema.safeParse({ id: -1, method: 'version' }).success).toBe(false);
    expect(ResponseSchema.safeParse({ id: 1, result: { ok: true } }).success).toBe(true);
    expect(ResponseSchema.safeParse({ id: null, error: errorBody('parse_error', 'x') }).success).toBe(true);
    expect(errorBody('too_large', 'x').errno).toBe('E2BIG');
    expect(errorBody('errno', 'x', 'EBUSY').errno).toBe('EBUSY');
  });
});

describe('LineSplitter', () => {
  it('splits across chunks, drops blank lines and CR', () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l), () => lines.push('!'));
    s.push('{"a"');
    s.push(':1}\n\n{"b":2}\r\n{"c"');
    s.push(':3}\n');
    expect(lines).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
  });

  it('reports an oversized line once and recovers at the next newline', () => {
    const lines: string[] = [];
    const sizes: number[] = [];
    const s = new LineSplitter((l) => lines.push(l), (n) => sizes.push(n), 10);
    s.push('x'.repeat(8));
    s.push('y'.repeat(8));
    s.push('z'.repeat(20));
    s.push('\nok\n');
    s.push('0123456789A\nfine\n');
    expect(sizes.length).toBe(2);
    expect(lines).toEqual(['ok', 'fine']);
  });
});
