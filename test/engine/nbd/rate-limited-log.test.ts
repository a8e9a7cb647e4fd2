import { describe, expect, it } from 'vitest';
import { RateLimitedLog } from '../../../engine/nbd/rate-limited-log.js';

describe('RateLimitedLog', () => {
  it('writes at most N lines a second, then one line saying how many it held back', () => {
    const lines: string[] = [];
    let now = 10_000;
    const log = new RateLimitedLog((m) => lines.push(m), 3, 'nbd[7]', () => now);
    for (let i = 0; i < 10; i++) log.log(`line ${i}`);
    expect(lines).toEqual(['line 0', 'line 1', 'line 2']);
    now += 999;
    log.log('still the same second');
    expect(lines).toHaveLength(3);
    now += 1;
    log.log('next second');
    expect(lines).toEqual(['line 0', 'line 1', 'line 2', 'nbd[7]: 8 more messages suppressed (at most 3 a second)', 'next second']);
  });

  it('writes the summary on flush (connection end) and only once', () => {
    const lines: string[] = [];
    const log = new RateLimitedLog((m) => lines.push(m), 1, 'nbd', () => 0);
    log.log('a');
    log.log('b');
    log.flush();
    log.flush();
    expect(lines).toEqual(['a', 'nbd: 1 more message suppressed (at most 1 a second)']);
  });
});
