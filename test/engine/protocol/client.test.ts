import { describe, expect, it, vi } from 'vitest';
import { HelperCallError, HelperClient } from '../../../engine/protocol/client.js';
import type { LineTransport } from '../../../engine/protocol/client.js';
import { PROTOCOL_VERSION } from '../../../engine/protocol/limits.js';

const ID = '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1';

class FakeTransport implements LineTransport {
  sent: { id: number; method: string; params: unknown }[] = [];
  private line: (l: string) => void = () => {};
  private closeCb: (e?: Error) => void = () => {};
  write(line: string): void {
    this.sent.push(JSON.parse(line) as { id: number; method: string; params: unknown });
  }
  onLine(cb: (l: string) => void): void {
    this.line = cb;
  }
  onClose(cb: (e?: Error) => void): void {
    this.closeCb = cb;
  }
  reply(message: unknown): void {
    this.line(JSON.stringify(message));
  }
  raw(line: string): void {
    this.line(line);
  }
  drop(error?: Error): void {
    this.closeCb(error);
  }
}

describe('HelperClient', () => {
  it('sends requests with increasing ids and resolves validated results out of order', async () => {
    const t = new FakeTransport();
    const c = new HelperClient(t);
    const a = c.call('version', {});
    const b = c.call('cbtInfo', { device: 'disk1' });
    expect(t.sent.map((m) => [m.id, m.method])).toEqual([[1, 'version'], [2, 'cbtInfo']]);
    expect(t.sent[1]?.params).toEqual({ device: 'disk1' });
    t.reply({ id: 2, result: { deviceCapacity: 4096, blockSize: 512, blockCount: 8, generationId: ID, changesNumber: 1 } });
    t.reply({ id: 1, result: { major: 2, minor: 0, revision: 0, build: 0 } });
    await expect(a).resolves.toEqual({ major: 2, minor: 0, revision: 0, build: 0 });
    await expect(b).resolves.toMatchObject({ blockCount: 8 });
  });

  it('rejects with the errno of an error response', async () => {
    const t = new FakeTransport();
    const c = new HelperClient(t);
    const p = c.call('detach', { device: 'disk1' });
    t.reply({ id: 1, error: { code: 'errno', errno: 'EBUSY', message: 'device is in a snapshot' } });
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HelperCallError);
    expect(err).toMatchObject({ code: 'errno', errno: 'EBUSY', errnoNumber: 16, message: 'device is in a snapshot' });
  });

  it('rejects a result that does not match the method table', async () => {
    const t = new FakeTransport();
    const c = new HelperClient(t);
    const p = c.call('version', {});
    t.reply({ id: 1, result: { major: 'two' } });
    await expect(p).rejects.toMatchObject({ code: 'bad_response', errno: 'EIO' });
  });

  it('times out calls and ignores late answers', async () => {
    vi.useFakeTimers();
    try {
      const t = new FakeTransport();
      const c = new HelperClient(t, { timeoutMs: 1000 });
      const p = c.call('version', {});
      const caught = p.catch((e: unknown) => e);
      vi.advanceTimersByTime(1001);
      expect(await caught).toMatchObject({ code: 'timeout', errno: 'ETIMEDOUT' });
      t.reply({ id: 1, result: { major: 1, minor: 0, revision: 0, build: 0 } });
      const q = c.call('version', {}, { timeoutMs: 5000 });
      vi.advanceTimersByTime(2000);
      t.reply({ id: 2, result: { major: 1, minor: 0, revision: 0, build: 0 } });
      await expect(q).resolves.toMatchObject({ major: 1 });
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps waiting for a call whose timeout is longer than a timer can hold (no instant ETIMEDOUT)', async () => {
    const t = new FakeTransport();
    const c = new HelperClient(t);
    // e.g. snapshot_wait_event --timeout 2147483648: the helper's EINVAL must come back, not a local timeout
    const p = c.call('version', {}, { timeoutMs: 2 ** 31 + 15_000 });
    const settled = vi.fn();
    p.then(settled, settled);
    await new Promise((r) => setTimeout(r, 30));
    expect(settled).not.toHaveBeenCalled();
    t.reply({ id: 1, error: { code: 'invalid_params', errno: 'EINVAL', message: 'timeoutMs too big' } });
    await expect(p).rejects.toMatchObject({ code: 'invalid_params', errno: 'EINVAL' });
  });

  it('delivers valid notifications to handlers and drops invalid ones', () => {
    const t = new FakeTransport();
    const c = new HelperClient(t);
    const events: unknown[] = [];
    const off = c.on('event', (e) => events.push(e));
    const ev = { code: 'corrupted', snapshotId: ID, timeMs: 5, device: 'disk1', devMajor: 240, devMinor: 1, errCode: -28 };
    t.reply({ method: 'event', params: ev });
    t.reply({ method: 'event', params: { code: 'corrupted' } });
    t.reply({ method: 'nonsense', params: {} });
    t.raw('not json');
    expect(events).toEqual([ev]);
    off();
    t.reply({ method: 'event', params: ev });
    expect(events).toHaveLength(1);
  });

  it('fails pending and later calls when the connection closes', async () => {
    const t = new FakeTransport();
    const c = new HelperClient(t);
    const p = c.call('version', {});
    const closed = vi.fn();
    c.onClose(closed);
    t.drop(new Error('EPIPE'));
    await expect(p).rejects.toMatchObject({ code: 'closed' });
    await expect(c.call('version', {})).rejects.toMatchObject({ code: 'closed' });
    expect(closed).toHaveBeenCalledOnce();
    expect(c.closed).toBe(true);
  });

  it('hello checks the protocol version', async () => {
    const t = new FakeTransport();
    const c = new HelperClient(t);
    const ok = c.hello('test');
    expect(t.sent[0]?.params).toEqual({ protocolVersion: PROTOCOL_VERSION, client: 'test' });
    t.reply({ id: 1, result: { protocolVersion: PROTOCOL_VERSION, driver: 'embedded', driverVersion: '2.0.0.0', capabilities: ['nbd'] } });
    await expect(ok).resolves.toMatchObject({ driver: 'embedded' });
    const bad = c.hello();
    t.reply({ id: 2, result: { protocolVersion: PROTOCOL_VERSION + 1, driver: 'kernel', driverVersion: '1', capabilities: [] } });
    await expect(bad).rejects.toMatchObject({ code: 'bad_response' });
  });
});
