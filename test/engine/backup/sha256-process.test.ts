import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { OPENSSL_PATH, Sha256Process, createSha256 } from '../../../engine/backup/sha256-process.js';
import { Sha256Worker } from '../../../engine/backup/sha256-worker.js';
import { hasCommand } from '../../helpers/env.js';
import { existsSync } from 'node:fs';

const noOpenssl = !existsSync(OPENSSL_PATH) || !hasCommand('openssl');

describe('SHA-256 through the system openssl', () => {
  it.skipIf(noOpenssl)('[openssl] gives node\'s digest of all chunks in order, more than its pipe holds, copied or handed over', async () => {
    const chunks = Array.from({ length: 12 }, (_, i) => randomBytes(3 * 1024 * 1024 + i * 7919));
    const expected = createHash('sha256').update(Buffer.concat(chunks)).digest('hex');
    const s = new Sha256Process();
    for (const [i, c] of chunks.entries()) {
      if (i % 2 === 0) {
        await s.update(c);
        c.fill(0); // a copy was sent
      } else await s.update(c, true);
    }
    expect(await s.digest()).toBe(expected);
    await s.close();
  });

  it.skipIf(noOpenssl)('[openssl] the digest of nothing is the SHA-256 of the empty string', async () => {
    const s = new Sha256Process();
    expect(await s.digest()).toBe(createHash('sha256').digest('hex'));
  });

  it('a program that cannot be started is an EIO that names openssl', async () => {
    const s = new Sha256Process('/nonexistent/openssl');
    await expect(s.update(Buffer.alloc(10)).then(() => s.digest())).rejects.toThrow(/EIO: the SHA-256 process \(openssl\) failed/);
    await s.close();
  });

  it('createSha256 uses openssl when /usr/bin/openssl exists, else the worker thread', async () => {
    const s = createSha256();
    expect(s instanceof (existsSync(OPENSSL_PATH) ? Sha256Process : Sha256Worker)).toBe(true);
    await s.update(Buffer.from('abc'));
    expect(await s.digest()).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    await s.close();
  });
});
