import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  LAYOUT,
  NIL_UUID,
  decodeBlkfilterCtl,
  decodeBlkfilterName,
  decodeCbtDirty,
  decodeCbtInfo,
  decodeCbtMap,
  decodeEventCorrupted,
  decodeEventNoSpace,
  decodeSectors,
  decodeSnapshotAdd,
  decodeSnapshotCollect,
  decodeSnapshotCreate,
  decodeSnapshotEvent,
  decodeSnapshotInfo,
  decodeUuid,
  decodeVersion,
  encodeBlkfilterCtl,
  encodeBlkfilterName,
  encodeCbtDirty,
  encodeCbtInfo,
  encodeCbtMap,
  encodeEventCorrupted,
  encodeEventNoSpace,
  encodeSectors,
  encodeSnapshotAdd,
  encodeSnapshotCollect,
  encodeSnapshotCreate,
  encodeSnapshotEvent,
  encodeSnapshotInfo,
  encodeUuid,
  encodeVersion,
} from '../../../engine/kernel/abi-structs.js';

const uuid = fc.uuid({ version: [1, 2, 3, 4, 5] }).map((u) => u.toLowerCase());
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u64n = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const safe = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const name = fc.stringMatching(/^[a-z0-9_-]{0,32}$/);

describe('struct encode/decode round trips', () => {
  it('blksnap_uuid keeps byte order of the canonical string', () => {
    const id = '00112233-4455-6677-8899-aabbccddeeff';
    expect([...encodeUuid(id)]).toEqual([
      0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    ]);
    fc.assert(fc.property(uuid, (u) => decodeUuid(encodeUuid(u)) === u));
    expect(() => encodeUuid('not-a-uuid')).toThrow(/^EINVAL: /);
  });

  it('blksnap_cbtinfo: fields at their offsets, padding zero', () => {
    const b = encodeCbtInfo({
      deviceCapacity: 0x1_0000_0200,
      blockSize: 65536,
      blockCount: 7,
      generationId: '00112233-4455-6677-8899-aabbccddeeff',
      changesNumber: 255,
    });
    expect(b.length).toBe(40);
    expect(b.readBigUInt64LE(0)).toBe(0x1_0000_0200n);
    expect(b.readUInt32LE(8)).toBe(65536);
    expect(b.readUInt32LE(12)).toBe(7);
    expect(b[16]).toBe(0x00);
    expect(b[31]).toBe(0xff);
    expect(b[32]).toBe(255);
    expect([...b.subarray(33)]).toEqual([0, 0, 0, 0, 0, 0, 0]);
    fc.assert(
      fc.property(safe, u32, u32, uuid, fc.integer({ min: 0, max: 255 }), (cap, bs, bc, gen, cn) => {
        const v = { deviceCapacity: cap, blockSize: bs, blockCount: bc, generationId: gen, changesNumber: cn };
        expect(decodeCbtInfo(encodeCbtInfo(v))).toEqual(v);
      }),
    );
  });

  it('blksnap_cbtmap, blksnap_sectors, blksnap_cbtdirty', () => {
    fc.assert(
      fc.property(u32, u32, u64n, (offset, length, buffer) => {
        expect(decodeCbtMap(encodeCbtMap({ offset, length, buffer }))).toEqual({ offset, length, buffer });
      }),
    );
    fc.assert(
      fc.property(safe, safe, (offset, count) => {
        expect(decodeSectors(encodeSectors({ offset, count }))).toEqual({ offset, count });
      }),
    );
    fc.assert(
      fc.property(u32, u64n, (count, dirtySectors) => {
        const b = encodeCbtDirty({ count, dirtySectors });
        expect(b.readUInt32LE(4)).toBe(0); // padding before the u64
        expect(decodeCbtDirty(b)).toEqual({ count, dirtySectors });
      }),
    );
  });

  it('blksnap_snapshotadd, blksnap_snapshotinfo (NUL-terminated image name)', () => {
    fc.assert(fc.property(uuid, (id) => decodeSnapshotAdd(encodeSnapshotAdd(id)) === id));
    const info = encodeSnapshotInfo({ errorCode: -28, image: 'blksnap-image0' });
    expect(info.length).toBe(36);
    expect(info.readInt32LE(0)).toBe(-28);
    expect(info.subarray(4, 18).toString()).toBe('blksnap-image0');
    expect(info[18]).toBe(0);
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), name, (errorCode, image) => {
        expect(decodeSnapshotInfo(encodeSnapshotInfo({ errorCode, image }))).toEqual({ errorCode, image });
      }),
    );
    // A full 32-byte name without NUL is read to the end of the array.
    const full = 'x'.repeat(32);
    expect(decodeSnapshotInfo(encodeSnapshotInfo({ errorCode: 0, image: full })).image).toBe(full);
    expect(() => encodeSnapshotInfo({ errorCode: 0, image: 'y'.repeat(33) })).toThrow(/ENAMETOOLONG/);
  });

  it('blksnap_version, blksnap_snapshot_create, blksnap_snapshot_collect', () => {
    const u16 = fc.integer({ min: 0, max: 0xffff });
    fc.assert(
      fc.property(u16, u16, u16, u16, (major, minor, revision, build) => {
        expect(decodeVersion(encodeVersion({ major, minor, revision, build }))).toEqual({ major, minor, revision, build });
      }),
    );
    const create = encodeSnapshotCreate({ diffStorageLimitSect: 2097152, diffStorageFd: 5, id: NIL_UUID });
    expect(create.length).toBe(32);
    expect(create.readBigUInt64LE(0)).toBe(2097152n);
    expect(create.readUInt32LE(8)).toBe(5);
    fc.assert(
      fc.property(safe, u32, uuid, (limit, fd, id) => {
        const v = { diffStorageLimitSect: limit, diffStorageFd: fd, id };
        expect(decodeSnapshotCreate(encodeSnapshotCreate(v))).toEqual(v);
      }),
    );
    fc.assert(
      fc.property(u32, u64n, (count, ids) => {
        expect(decodeSnapshotCollect(encodeSnapshotCollect({ count, ids }))).toEqual({ count, ids });
      }),
    );
  });

  it('blksnap_snapshot_event is one page with its body at 32', () => {
    const body = encodeEventCorrupted({ devIdMj: 8, devIdMn: 16, errCode: -28 });
    const ev = encodeSnapshotEvent({ id: NIL_UUID, timeoutMs: 1000, code: 0, timeLabel: -5n, data: body });
    expect(ev.length).toBe(4096);
    expect(ev.readUInt32LE(16)).toBe(1000);
    expect(ev.readBigInt64LE(24)).toBe(-5n);
    expect(decodeEventCorrupted(ev.subarray(32))).toEqual({ devIdMj: 8, devIdMn: 16, errCode: -28 });
    const back = decodeSnapshotEvent(ev);
    expect(back.data.length).toBe(4096 - 32);
    expect(decodeEventCorrupted(back.data)).toEqual({ devIdMj: 8, devIdMn: 16, errCode: -28 });
    expect(decodeEventNoSpace(encodeEventNoSpace(2097152))).toBe(2097152);
    expect(() => encodeSnapshotEvent({ id: NIL_UUID, timeoutMs: 0, code: 0, timeLabel: 0n, data: new Uint8Array(4065) })).toThrow(
      /ENOSPC/,
    );
  });

  it('blkfilter_name and blkfilter_ctl', () => {
    const n = encodeBlkfilterName('blksnap');
    expect(n.length).toBe(32);
    expect(n.subarray(0, 8).toString('latin1')).toBe('blksnap\0');
    fc.assert(fc.property(name, (s) => decodeBlkfilterName(encodeBlkfilterName(s)) === s));
    fc.assert(
      fc.property(name, u32, u32, u64n, (nm, cmd, optlen, opt) => {
        const b = encodeBlkfilterCtl({ name: nm, cmd, optlen, opt });
        expect(b.length).toBe(LAYOUT.blkfilter_ctl.size);
        expect(decodeBlkfilterCtl(b)).toEqual({ name: nm, cmd, optlen, opt });
      }),
    );
  });

  it('rejects short buffers with EFAULT and out-of-range values with EINVAL', () => {
    expect(() => decodeCbtInfo(Buffer.alloc(39))).toThrow(/EFAULT/);
    expect(() => decodeSnapshotEvent(Buffer.alloc(4095))).toThrow(/EFAULT/);
    expect(() => encodeCbtMap({ offset: -1, length: 0, buffer: 0n })).toThrow(/EINVAL/);
    expect(() => encodeCbtMap({ offset: 2 ** 32, length: 0, buffer: 0n })).toThrow(/EINVAL/);
    expect(() => encodeSectors({ offset: 1.5, count: 1 })).toThrow(/EINVAL/);
    expect(() => encodeCbtMap({ offset: 0, length: 0, buffer: 1n << 64n })).toThrow(/EINVAL/);
  });

  it('decodes at an offset inside a larger buffer', () => {
    const big = Buffer.concat([Buffer.alloc(16), encodeSectors({ offset: 9, count: 3 })]);
    expect(decodeSectors(big, 16)).toEqual({ offset: 9, count: 3 });
  });
});
