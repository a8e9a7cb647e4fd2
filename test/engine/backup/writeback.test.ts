import { describe, expect, it } from 'vitest';
import { Writeback } from '../../../engine/backup/writeback.js';

describe('Writeback', () => {
  it('starts one background sync per step of bytes written, never two at once', async () => {
    const calls: number[] = [];
    let finish: () => void = () => undefined;
    const wb = new Writeback(7, 10, (fd) => {
      calls.push(fd);
      return new Promise<void>((resolve) => (finish = resolve));
    });
    wb.wrote(5);
    expect(calls).toEqual([]); // below one step
    wb.wrote(6);
    expect(calls).toEqual([7]); // 11 bytes: one sync of fd 7
    wb.wrote(25);
    expect(calls).toEqual([7]); // one is running: no second
    finish();
    await wb.settle();
    wb.wrote(1); // the 26 bytes written meanwhile still wait: the next write starts a sync
    expect(calls).toEqual([7, 7]);
    finish();
    await wb.settle();
  });

  it('reports a failed background sync to the writer', async () => {
    const wb = new Writeback(3, 1, () => Promise.reject(Object.assign(new Error('EIO: disk error'), { code: 'EIO' })));
    wb.wrote(2);
    await expect(wb.settle()).rejects.toThrow(/EIO: disk error/);
    expect(() => wb.wrote(1)).toThrow(/EIO: disk error/);
  });
});
