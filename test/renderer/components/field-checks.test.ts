/** Field checks: every refusal says why, in the field's unit; nothing is rounded, clamped or trimmed into another value. */
import { describe, expect, it } from 'vitest';
import { checkDeviceName, checkDirectory, checkSnapshotName, parseAmount, parseSize } from '../../../renderer/src/components/field-checks.js';

const MiB = 1024 * 1024;

describe('parseAmount', () => {
  it('accepts a positive decimal number as typed', () => {
    expect(parseAmount('4', 'the rate', 'MiB/s')).toEqual({ value: 4 });
    expect(parseAmount(' 2.5 ', 'the rate', 'MiB/s')).toEqual({ value: 2.5 });
    expect(parseAmount('.5', 'the rate', 'MiB/s')).toEqual({ value: 0.5 });
  });

  it('refuses empty, non-numbers, zero, negatives and more than the maximum, in the unit', () => {
    expect(parseAmount('', 'the rate', 'MiB/s')).toEqual({ error: 'Enter the rate in MiB/s.' });
    expect(parseAmount('4x', 'the rate', 'MiB/s')).toEqual({ error: '"4x" is not a number: enter the rate in MiB/s with digits and at most one decimal point (e.g. 64 or 1.5).' });
    expect(parseAmount('1e3', 'the rate', 'MiB/s')).toHaveProperty('error');
    expect(parseAmount('1,5', 'the rate', 'MiB/s')).toHaveProperty('error');
    expect(parseAmount('0', 'the rate', 'MiB/s')).toEqual({ error: 'The rate must be more than 0 MiB/s, not 0.' });
    expect(parseAmount('-2', 'the rate', 'MiB/s')).toEqual({ error: 'The rate must be more than 0 MiB/s, not -2.' });
    expect(parseAmount('100001', 'the rate', 'MiB/s', 100_000)).toEqual({ error: 'The rate can be at most 100000 MiB/s, not 100001.' });
  });
});

describe('parseSize', () => {
  it('gives bytes for whole sectors in the unit', () => {
    expect(parseSize('64', 'the limit', 'MiB', MiB)).toEqual({ value: 64 * MiB });
    expect(parseSize('1.5', 'the size', 'GiB', 1024 * MiB)).toEqual({ value: 1.5 * 1024 * MiB });
    expect(parseSize('0.00048828125', 'the limit', 'MiB', MiB)).toEqual({ value: 512 });
  });

  it('refuses a size that is not whole sectors, naming the nearest ones in the unit', () => {
    expect(parseSize('0.1', 'the limit', 'MiB', MiB)).toEqual({
      error: '0.1 MiB is not a whole number of 512-byte sectors; the nearest that are: 0.099609375 MiB or 0.10009765625 MiB.',
    });
    // below one sector: only the next size up
    expect(parseSize('0.0001', 'the limit', 'MiB', MiB)).toEqual({ error: '0.0001 MiB is not a whole number of 512-byte sectors; the nearest that are: 0.00048828125 MiB.' });
  });

  it('refuses more than the contract carries, in the unit', () => {
    expect(parseSize('9000000000', 'the size', 'MiB', MiB)).toEqual({ error: 'The size can be at most 8589934591 MiB, not 9000000000.' });
  });
});

describe('names and directories', () => {
  it('a directory is absolute and kept as typed', () => {
    expect(checkDirectory('/var/tmp')).toEqual({ value: '/var/tmp' });
    expect(checkDirectory('var/tmp', 'the storage directory')).toEqual({ error: 'The storage directory must be an absolute path starting with /, not "var/tmp".' });
    expect(checkDirectory(' /var/tmp')).toHaveProperty('error');
    expect(checkDirectory('')).toEqual({ error: 'Enter the directory as an absolute path (starting with /).' });
    expect(checkDirectory('/tmp/a\u001bb')).toEqual({ error: 'The directory contains the control character \\x1b at position 6.' });
  });

  it('a device name follows the helper\'s rule and is free', () => {
    const taken = new Set(['disk1']);
    expect(checkDeviceName('disk2', taken, 'disk2')).toEqual({ value: 'disk2' });
    expect(checkDeviceName('disk1', taken, 'disk2')).toEqual({ error: 'A device named disk1 exists already; disk2 is free.' });
    expect(checkDeviceName('-x', taken, 'disk2')).toHaveProperty('error');
    expect(checkDeviceName('a'.repeat(65), taken, 'disk2')).toEqual({ error: 'A name has at most 64 characters, this one 65.' });
  });

  it('a snapshot name: optional, at most 64 characters, no space at either end, no control characters', () => {
    expect(checkSnapshotName('')).toEqual({ value: null });
    expect(checkSnapshotName('before upgrade')).toEqual({ value: 'before upgrade' });
    expect(checkSnapshotName(' nightly')).toEqual({ error: 'The name starts or ends with a space; remove it (the name is kept as typed).' });
    expect(checkSnapshotName('x'.repeat(65))).toEqual({ error: 'A snapshot name has at most 64 characters, this one 65.' });
    expect(checkSnapshotName('a\u0007')).toEqual({ error: 'The name contains the control character \\x07 at position 1.' });
  });
});
