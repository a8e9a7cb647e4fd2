import { describe, expect, it, vi } from 'vitest';
import { HelperCallError, HelperClient, ProtocolViolation } from '../../../engine/protocol/client.js';
import type { LineTransport } from '../../../engine/protocol/client.js';
import { MAX_LINE_LENGTH, PROTOCOL_VERSION } from '../../../engine/protocol/limits.js';

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
  closes = 0;
  close(): void {
    this.closes++;
  }
}

/** Settles within the microtasks after the offending line, or never: no timer involved. */
async function settledNow(p: Promise<unknown>): Promise<{ state: 'rejected'; error: unknown } | { state: 'pending' | 'resolved' }> {
  let outcome: { state: 'rejected'; error: unknown } | { state: 'pending' | 'resolved' } = { state: 'pending' };
  p.then(
    () => (outcome = { state: 'resolved' }),
    (error: unknown) => (outcome = { state: 'rejected', error }),
  );
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return outcome;
}

const EVENT = { code: 'corrupted', snapshotId: ID, timeMs: 5, device: 'disk1', devMajor: 240, devMinor: 1, errCode: -28 };

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

  it('delivers valid notifications to the handlers registered for them', () => {
    const t = new FakeTransport();
    const c = new HelperClient(t);
    const events: unknown[] = [];
    const snapshots: unknown[] = [];
    const off = c.on('event', (e) => events.push(e));
    c.on('snapshot', (e) => snapshots.push(e));
    t.reply({ method: 'event', params: EVENT });
    t.reply({ method: 'snapshot', params: { id: ID, state: 'taken' } });
    expect(events).toEqual([EVENT]);
    expect(snapshots).toEqual([{ id: ID, state: 'taken' }]);
    off();
    t.reply({ method: 'event', params: EVENT });
    expect(events).toHaveLength(1);
    expect(c.closed).toBe(false);
  });

  it('refuses to send a request longer than the line limit (E2BIG), and the connection stays usable', async () => {
    const t = new FakeTransport();
    const c = new HelperClient(t);
    const huge = c.call('hello', { protocolVersion: 1, client: 'x'.repeat(MAX_LINE_LENGTH) });
    await expect(huge).rejects.toMatchObject({ code: 'too_large', errno: 'E2BIG', message: /larger than the 1048576-character line limit/ });
    expect(t.sent).toEqual([]);
    const v = c.call('version', {});
    t.reply({ id: 2, result: { major: 1, minor: 0, revision: 0, build: 0 } });
    await expect(v).resolves.toMatchObject({ major: 1 });
  });

  it('fails every pending call at once with the error the helper sent without an id (e.g. its client limit)', async () => {
    const t = new FakeTransport();
    const c = new HelperClient(t);
    const a = c.call('version', {});
    const b = c.call('devices.list', {});
    t.reply({ id: null, error: { code: 'errno', errno: 'EAGAIN', message: 'the helper serves at most 64 clients at once' } });
    for (const p of [a, b]) {
      const outcome = await settledNow(p);
      expect(outcome.state).toBe('rejected');
      expect(outcome).toMatchObject({ error: { code: 'errno', errno: 'EAGAIN', message: /refused this connection's request: the helper serves at most 64 clients/ } });
    }
    expect(t.closes).toBe(1);
    await expect(c.call('version', {})).rejects.toMatchObject({ errno: 'EAGAIN' });
  });
});

describe('HelperClient: a protocol violation is fatal at once', () => {
  const violations: { what: string; line: string; message: RegExp }[] = [
    { what: 'invalid JSON', line: '{"id": 1, "result": ', message: /helper protocol violation: invalid JSON/ },
    { what: 'a JSON value that is not an object', line: '[1, 2]', message: /not a JSON object/ },
    { what: 'a bare number', line: '42', message: /not a JSON object/ },
    { what: 'an answer to an id never sent', line: JSON.stringify({ id: 99, result: { major: 1, minor: 0, revision: 0, build: 0 } }), message: /answer to request id 99, which this client has not sent/ },
    { what: 'an answer with a string id never sent', line: JSON.stringify({ id: 'abc', error: { code: 'internal', message: 'x' } }), message: /answer to request id "abc"/ },
    { what: 'a response with both result and error', line: JSON.stringify({ id: 1, result: {}, error: { code: 'internal', message: 'x' } }), message: /malformed response/ },
    { what: 'an error body with an unknown code', line: JSON.stringify({ id: 1, error: { code: 'oops', message: 'x' } }), message: /malformed response/ },
    { what: 'a negative id', line: JSON.stringify({ id: -1, result: {} }), message: /malformed response/ },
    { what: 'a result without an id', line: JSON.stringify({ id: null, result: {} }), message: /a result without a request id/ },
    { what: 'an unknown notification', line: JSON.stringify({ method: 'nonsense', params: {} }), message: /unknown notification "nonsense"/ },
    { what: 'a notification with malformed params', line: JSON.stringify({ method: 'event', params: { code: 'corrupted' } }), message: /malformed event notification/ },
    { what: 'a notification without params', line: JSON.stringify({ method: 'snapshot' }), message: /neither a response nor a notification/ },
    { what: 'a message with extra keys', line: JSON.stringify({ method: 'devices', params: { reason: 'x' }, extra: 1 }), message: /neither a response nor a notification/ },
  ];

  for (const v of violations) {
    it(`${v.what}: closes the connection and rejects every pending call with EPROTO`, async () => {
      const t = new FakeTransport();
      const c = new HelperClient(t, { timeoutMs: 60_000 });
      const closed = vi.fn();
      c.onClose(closed);
      const a = c.call('version', {});
      const b = c.call('snapshotWaitEvent', { id: ID, timeoutMs: 1000 });
      t.raw(v.line);
      for (const p of [a, b]) {
        const outcome = await settledNow(p);
        expect(outcome.state).toBe('rejected');
        const error = (outcome as { error: unknown }).error;
        expect(error).toBeInstanceOf(HelperCallError);
        expect(error).toMatchObject({ code: 'protocol_violation', errno: 'EPROTO', errnoNumber: 71, message: v.message });
      }
      expect(t.closes).toBe(1);
      expect(closed).toHaveBeenCalledOnce();
      expect(c.closed).toBe(true);
      await expect(c.call('version', {})).rejects.toMatchObject({ errno: 'EPROTO', message: v.message });
      // the rest of the chunk is not read: a valid answer after the violation does not resolve anything
      t.reply({ id: 1, result: { major: 1, minor: 0, revision: 0, build: 0 } });
      expect(t.closes).toBe(1);
    });
  }

  it('a transport that closes with a ProtocolViolation (e.g. a line over the limit) fails the calls with EPROTO', async () => {
    const t = new FakeTransport();
    const c = new HelperClient(t, { timeoutMs: 60_000 });
    const p = c.call('version', {});
    t.drop(new ProtocolViolation('the helper sent a line longer than 1048576 characters'));
    const outcome = await settledNow(p);
    expect(outcome).toMatchObject({
      state: 'rejected',
      error: { code: 'protocol_violation', errno: 'EPROTO', message: 'helper protocol violation: the helper sent a line longer than 1048576 characters' },
    });
  });

  it('quotes only the start of a huge offending line', async () => {
    const t = new FakeTransport();
    const c = new HelperClient(t);
    const p = c.call('version', {});
    t.raw('x'.repeat(500_000));
    const outcome = await settledNow(p);
    const error = (outcome as { error: Error }).error;
    expect(error.message).toMatch(/^helper protocol violation: invalid JSON .*"x{120}"\.\.\. \(500000 characters\)$/);
  });

  it('a late answer to a call that timed out is not a violation', async () => {
    vi.useFakeTimers();
    try {
      const t = new FakeTransport();
      const c = new HelperClient(t, { timeoutMs: 1000 });
      const late = c.call('version', {}).catch((e: unknown) => e);
      const waiting = c.call('devices.list', {}, { timeoutMs: 60_000 });
      vi.advanceTimersByTime(1001);
      expect(await late).toMatchObject({ code: 'timeout' });
      t.reply({ id: 1, result: { major: 1, minor: 0, revision: 0, build: 0 } });
      expect(c.closed).toBe(false);
      // but the same id answered twice is
      t.reply({ id: 1, result: { major: 1, minor: 0, revision: 0, build: 0 } });
      await expect(waiting).rejects.toMatchObject({ errno: 'EPROTO', message: /request id 1, which this client has not sent or has had answered/ });
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('HelperClient (closing)', () => {
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
