/**
 * The dialect tables against the numbers and byte offsets of the spec
 * (/work/shared/specs/blksnap-abi-dialects.md sections 1-5), written out here.
 */
import { describe, expect, it } from 'vitest';
import {
  encodeAppendStorage,
  encodeBdevfilterCtl,
  encodeBdevfilterName,
  encodeBlkfilterAttach,
  encodeSnapshotCreatePath,
} from '../../../engine/kernel/dialect-structs.js';
import { DIALECTS } from '../../../engine/kernel/dialects.js';

describe('dialect request numbers and names (spec sections 1, 2, 5)', () => {
  it.each([
    ['v6', '/dev/blksnap-control', null, 0xc020128c, 0xc020128d, 0xc030128e, null, 'blksnap-image_254:0'],
    ['val7', '/dev/veeamblksnap', '/dev/bdevfilter', 0xc028468c, 0xc028468d, 0xc038468e, 0x40285622, 'veeamblksnapimg_254:0'],
    ['lk6.15', '/dev/blksnap-control', null, 0xc030128e, 0xc020128f, 0xc0301290, null, 'blksnap-254-0'],
  ] as const)('%s', (name, control, bdevfilter, attach, detach, ctl, append, image) => {
    const d = DIALECTS[name];
    expect(d.controlPath).toBe(control);
    expect(d.filterControlPath).toBe(bdevfilter);
    expect(d.filter).toBe(bdevfilter ? 'bdevfilter' : 'block-device');
    expect([d.attachRequest, d.detachRequest, d.ctlRequest]).toEqual([attach, detach, ctl]);
    expect(d.createRequest).toBe(0xc0205601);
    expect(d.appendStorageRequest).toBe(append);
    expect(d.imageDiskName(254, 0)).toBe(image);
  });
});

describe('dialect struct bytes (spec sections 3, 5)', () => {
  it('snapshot_create with a path: limit u64 at 0, filename pointer u64 at 8, 32 bytes', () => {
    const b = encodeSnapshotCreatePath(0x1234, 0x7f0011223344n);
    expect(b.length).toBe(32);
    expect(b.readBigUInt64LE(0)).toBe(0x1234n);
    expect(b.readBigUInt64LE(8)).toBe(0x7f0011223344n);
    expect(b.subarray(16).every((x) => x === 0)).toBe(true);
    expect(DIALECTS.val7.createIdOffset).toBe(16);
    expect(DIALECTS['lk6.15'].createIdOffset).toBe(16);
    expect(DIALECTS.v6.createIdOffset).toBe(12);
  });

  it('append_storage: id 0, devpath 16, count 24, ranges 32, 40 bytes', () => {
    const b = encodeAppendStorage('00112233-4455-6677-8899-aabbccddeeff', 0x1000n, 3, 0x2000n);
    expect(b.length).toBe(40);
    expect(b.subarray(0, 16).toString('hex')).toBe('00112233445566778899aabbccddeeff');
    expect(b.readBigUInt64LE(16)).toBe(0x1000n);
    expect(b.readUInt32LE(24)).toBe(3);
    expect(b.readBigUInt64LE(32)).toBe(0x2000n);
  });

  it('bdevfilter_name 40 (devpath 0, name 8) and bdevfilter_ctl 56 (cmd 40, optlen 44, opt 48)', () => {
    const n = encodeBdevfilterName(0xabcn, 'blksnap');
    expect(n.length).toBe(40);
    expect(n.readBigUInt64LE(0)).toBe(0xabcn);
    expect(n.subarray(8, 16).toString('latin1')).toBe('blksnap\0');
    const c = encodeBdevfilterCtl({ devpath: 0xabcn, name: 'blksnap', cmd: 4, optlen: 36, opt: 0xdefn });
    expect(c.length).toBe(56);
    expect(c.readBigUInt64LE(0)).toBe(0xabcn);
    expect(c.subarray(8, 15).toString('latin1')).toBe('blksnap');
    expect([c.readUInt32LE(40), c.readUInt32LE(44)]).toEqual([4, 36]);
    expect(c.readBigUInt64LE(48)).toBe(0xdefn);
  });

  it('lk6.15 blkfilter_attach is 48 bytes with the name at 0 and no options', () => {
    const a = encodeBlkfilterAttach('blksnap');
    expect(a.length).toBe(48);
    expect(a.subarray(0, 8).toString('latin1')).toBe('blksnap\0');
    expect(a.subarray(32).every((x) => x === 0)).toBe(true);
  });
});
