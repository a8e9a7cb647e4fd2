import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BLKFILTER_ATTACH,
  BLKFILTER_CTL,
  BLKFILTER_DETACH,
  BLKGETSIZE64,
  BLKPBSZGET,
  BLKSSZGET,
  IOCTL_BLKSNAP_SNAPSHOT_COLLECT,
  IOCTL_BLKSNAP_SNAPSHOT_CREATE,
  IOCTL_BLKSNAP_SNAPSHOT_DESTROY,
  IOCTL_BLKSNAP_SNAPSHOT_TAKE,
  IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT,
  IOCTL_BLKSNAP_VERSION,
  ioc,
  iocDir,
  iocNr,
  iocSize,
  iocType,
  ioctlName,
} from '../../../engine/kernel/ioctl-numbers.js';

describe('ioctl numbers', () => {
  it('well-known block ioctls have their Linux values', () => {
    expect(BLKGETSIZE64).toBe(0x80081272);
    expect(BLKSSZGET).toBe(0x1268);
    expect(BLKPBSZGET).toBe(0x127b);
  });

  it('blksnap v6 requests: type V, nr 0..5, direction and size from the header', () => {
    expect(IOCTL_BLKSNAP_VERSION).toBe(0x80085600);
    expect(IOCTL_BLKSNAP_SNAPSHOT_CREATE).toBe(0xc0205601);
    expect(IOCTL_BLKSNAP_SNAPSHOT_DESTROY).toBe(0x40105602);
    expect(IOCTL_BLKSNAP_SNAPSHOT_TAKE).toBe(0x40105603);
    expect(IOCTL_BLKSNAP_SNAPSHOT_COLLECT).toBe(0x80105604);
    expect(IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT).toBe(0x90005605);
  });

  it('blkfilter requests are _IOWR(0x12, 140..142)', () => {
    expect(BLKFILTER_ATTACH).toBe(0xc020128c);
    expect(BLKFILTER_DETACH).toBe(0xc020128d);
    expect(BLKFILTER_CTL).toBe(0xc030128e);
  });

  it('the _IOC fields decode back', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 0x3fff }),
        (dir, type, nr, size) => {
          const req = ioc(dir, type, nr, size);
          expect(req).toBeGreaterThanOrEqual(0);
          expect(req).toBeLessThan(2 ** 32);
          expect([iocDir(req), iocType(req), iocNr(req), iocSize(req)]).toEqual([dir, type, nr, size]);
        },
      ),
    );
    expect(() => ioc(0, 0, 0, 0x4000)).toThrow(/ioctl size 16384 out of range/);
  });

  it('names requests for messages', () => {
    expect(ioctlName(BLKFILTER_CTL)).toBe('BLKFILTER_CTL');
    expect(ioctlName(0x1234)).toBe('0x1234');
  });
});
