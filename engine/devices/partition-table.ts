/**
 * A small reader of the partition tables found on disk images: MBR (with the logical
 * partitions of an extended partition) and GPT. Pure over a `read(offset, length)`
 * function, so it works on image files, block devices and test buffers alike.
 *
 * Layout facts: the MBR is LBA 0, four 16-byte entries at byte 446 (type at +4, first
 * LBA at +8, sector count at +12, little endian), signature 0x55 0xAA at 510. A
 * protective MBR (one entry of type 0xEE) announces a GPT: header at LBA 1 starting
 * "EFI PART", with the entries' LBA at +72, their count at +80 and size at +84; each
 * entry holds the type GUID at 0, the first and last (inclusive) LBA at 32 and 40 and
 * a UTF-16LE name at 56 (72 bytes). Extended partitions (types 0x05, 0x0F, 0x85) chain
 * extended boot records: entry 0 is a logical partition relative to its record, entry 1
 * the next record relative to the extended partition's start.
 */
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { BlksnapError } from '../abi/errno.js';

export interface PartitionEntry {
  /** The kernel's number: 1-4 primary (MBR) or the GPT slot + 1; 5 on for MBR logical partitions. */
  number: number;
  startBytes: number;
  sizeBytes: number;
  /** MBR: the type byte as "0x83"; GPT: the type GUID in its usual lower-case text form. */
  type: string;
  /** GPT partition name, null when empty or on MBR. */
  name: string | null;
}

export interface PartitionTable {
  scheme: 'mbr' | 'gpt';
  /** Logical sector size the table was read with (GPT: 512 or 4096). */
  sectorSize: number;
  partitions: PartitionEntry[];
}

/** Reads `length` bytes at `offset`; may return fewer at the end of the image. */
export type ReadAt = (offset: number, length: number) => Promise<Uint8Array>;

const MBR_SIGNATURE_OFFSET = 510;
const MBR_ENTRIES_OFFSET = 446;
const GPT_SIGNATURE = 'EFI PART';
const PROTECTIVE = 0xee;
const EXTENDED = new Set([0x05, 0x0f, 0x85]);
/** Bounds against a corrupt or hostile table (a GPT holds 128 entries by default). */
const MAX_GPT_ENTRIES = 1024;
const MAX_LOGICAL = 128;

function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
}

function u64(b: Uint8Array, at: number): number {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BlksnapError('EINVAL', 'partition table: an LBA is beyond 2^53');
  return Number(v);
}

function hasMbrSignature(sector: Uint8Array): boolean {
  return sector.length >= 512 && sector[MBR_SIGNATURE_OFFSET] === 0x55 && sector[MBR_SIGNATURE_OFFSET + 1] === 0xaa;
}

interface RawMbrEntry {
  type: number;
  firstLba: number;
  sectors: number;
}

function mbrEntries(sector: Uint8Array): RawMbrEntry[] {
  const out: RawMbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const at = MBR_ENTRIES_OFFSET + i * 16;
    out.push({ type: sector[at + 4] as number, firstLba: u32(sector, at + 8), sectors: u32(sector, at + 12) });
  }
  return out;
}

function hex2(n: number): string {
  return `0x${n.toString(16).padStart(2, '0')}`;
}

/** A GUID's text form: the first three fields are little endian on disk. */
export function guidText(b: Uint8Array): string {
  const h = (from: number, to: number, reverse: boolean): string => {
    const bytes = Array.from(b.subarray(from, to));
    if (reverse) bytes.reverse();
    return bytes.map((x) => x.toString(16).padStart(2, '0')).join('');
  };
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`;
}

function utf16Name(b: Uint8Array): string | null {
  let end = 0;
  while (end + 1 < b.length && (b[end] !== 0 || b[end + 1] !== 0)) end += 2;
  const text = Buffer.from(b.subarray(0, end)).toString('utf16le');
  return text === '' ? null : text;
}

async function readExact(read: ReadAt, offset: number, length: number): Promise<Uint8Array | null> {
  const b = await read(offset, length);
  return b.length >= length ? b : null;
}

async function readGpt(read: ReadAt, sectorSize: number): Promise<PartitionTable | null> {
  const header = await readExact(read, sectorSize, 92);
  if (header === null || Buffer.from(header.subarray(0, 8)).toString('latin1') !== GPT_SIGNATURE) return null;
  const entriesLba = u64(header, 72);
  const count = u32(header, 80);
  const entrySize = u32(header, 84);
  if (entrySize < 128 || entrySize % 8 !== 0 || count > MAX_GPT_ENTRIES) {
    throw new BlksnapError('EINVAL', `GPT header: ${count} entries of ${entrySize} bytes is not a valid table`);
  }
  const entries = await readExact(read, entriesLba * sectorSize, count * entrySize);
  if (entries === null) throw new BlksnapError('EINVAL', 'GPT: the partition entries lie beyond the end of the image');
  const partitions: PartitionEntry[] = [];
  for (let i = 0; i < count; i++) {
    const e = entries.subarray(i * entrySize, (i + 1) * entrySize);
    if (e.subarray(0, 16).every((x) => x === 0)) continue;
    const first = u64(e, 32);
    const last = u64(e, 40);
    if (last < first) continue;
    partitions.push({
      number: i + 1,
      startBytes: first * sectorSize,
      sizeBytes: (last - first + 1) * sectorSize,
      type: guidText(e.subarray(0, 16)),
      name: utf16Name(e.subarray(56, 128)),
    });
  }
  return { scheme: 'gpt', sectorSize, partitions };
}

async function logicalPartitions(read: ReadAt, extendedLba: number): Promise<PartitionEntry[]> {
  const out: PartitionEntry[] = [];
  let ebrLba = extendedLba;
  const seen = new Set<number>();
  while (out.length < MAX_LOGICAL && !seen.has(ebrLba)) {
    seen.add(ebrLba);
    const sector = await readExact(read, ebrLba * 512, 512);
    if (sector === null || !hasMbrSignature(sector)) break;
    const [logical, next] = mbrEntries(sector) as [RawMbrEntry, RawMbrEntry, RawMbrEntry, RawMbrEntry];
    if (logical.type !== 0 && logical.sectors > 0) {
      out.push({ number: 5 + out.length, startBytes: (ebrLba + logical.firstLba) * 512, sizeBytes: logical.sectors * 512, type: hex2(logical.type), name: null });
    }
    if (next.type === 0 || next.firstLba === 0) break;
    ebrLba = extendedLba + next.firstLba;
  }
  return out;
}

/**
 * The partition table at the start of an image: GPT (behind its protective MBR),
 * else MBR; null when there is none (no 0x55AA signature). EINVAL for a GPT whose
 * header or entries cannot be valid.
 */
export async function readPartitionTable(read: ReadAt): Promise<PartitionTable | null> {
  const mbr = await readExact(read, 0, 512);
  if (mbr === null || !hasMbrSignature(mbr)) return null;
  const entries = mbrEntries(mbr);
  if (entries.some((e) => e.type === PROTECTIVE)) {
    for (const sectorSize of [512, 4096]) {
      const gpt = await readGpt(read, sectorSize);
      if (gpt) return gpt;
    }
    throw new BlksnapError('EINVAL', 'a protective MBR announces a GPT, but no "EFI PART" header was found at LBA 1');
  }
  const partitions: PartitionEntry[] = [];
  for (const [i, e] of entries.entries()) {
    if (e.type === 0 || e.sectors === 0) continue;
    partitions.push({ number: i + 1, startBytes: e.firstLba * 512, sizeBytes: e.sectors * 512, type: hex2(e.type), name: null });
  }
  // An MBR boot sector of a filesystem (FAT, NTFS) also ends with 0x55AA: its "entries" are
  // boot code. Only accept entries that look like partitions: none starting at LBA 0.
  if (partitions.some((p) => p.startBytes === 0)) return null;
  for (const e of entries) {
    if (EXTENDED.has(e.type) && e.sectors > 0) partitions.push(...(await logicalPartitions(read, e.firstLba)));
  }
  return { scheme: 'mbr', sectorSize: 512, partitions };
}

/** The partition table of an image file or block device (null when none or unreadable). */
export async function readPartitionTableOfFile(path: string): Promise<PartitionTable | null> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch {
    return null;
  }
  try {
    const read: ReadAt = async (offset, length) => {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buf, 0, length, offset);
      return buf.subarray(0, bytesRead);
    };
    return await readPartitionTable(read);
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}
