/**
 * The metadata contexts the server offers for NBD_CMD_BLOCK_STATUS, and the
 * status descriptors each gives:
 * - "base:allocation": holes (NBD_STATE_HOLE | NBD_STATE_ZERO) and data (0),
 *   from BlockDevice.extents(); a device without it is all data;
 * - "blksnap:changed-since:N": state 1 (dirty) for every CBT block whose change
 *   number is newer than N, 0 otherwise;
 * - "qemu:dirty-bitmap:blksnap-N": the same table in the form qemu's bitmap
 *   contexts use (bit 1 = dirty), for clients written for qemu.
 * N runs from 0 to the table's newest number minus one.
 */
import type { BlockDevice, BlockExtent } from '../core/block-device.js';

export const BASE_ALLOCATION = 'base:allocation';
export const CHANGED_SINCE_PREFIX = 'blksnap:changed-since:';
export const QEMU_BITMAP_PREFIX = 'qemu:dirty-bitmap:blksnap-';

export const NBD_STATE_HOLE = 1;
export const NBD_STATE_ZERO = 2;
export const NBD_STATE_DIRTY = 1;

/** A context the client selected with NBD_OPT_SET_META_CONTEXT. */
export interface MetaContext {
  id: number;
  name: string;
  /** For change contexts: blocks newer than this change number are dirty. */
  since: number | null;
}

/** One NBD block-status descriptor. */
export interface StatusRun {
  length: number;
  flags: number;
}

/** The contexts this device offers now, in listing order. */
export function contextNamesFor(device: BlockDevice): string[] {
  const names = [BASE_ALLOCATION];
  const map = device.changeMap?.();
  if (map !== undefined) {
    for (let n = 0; n < map.newest; n++) names.push(`${CHANGED_SINCE_PREFIX}${n}`);
    for (let n = 0; n < map.newest; n++) names.push(`${QEMU_BITMAP_PREFIX}${n}`);
  }
  return names;
}

/** The names of `offered` a LIST query selects: an exact name, or "ns:" / a prefix ending in ':' or '-'. */
export function matchQuery(offered: readonly string[], query: string): string[] {
  if (query.endsWith(':') || query.endsWith('-')) return offered.filter((n) => n.startsWith(query));
  return offered.filter((n) => n === query);
}

/** The change number of a change context's name, or null for other names. */
export function sinceOf(name: string): number | null {
  for (const prefix of [CHANGED_SINCE_PREFIX, QEMU_BITMAP_PREFIX]) {
    if (name.startsWith(prefix)) {
      const text = name.slice(prefix.length);
      if (/^(0|[1-9][0-9]{0,2})$/.test(text)) return Number(text);
    }
  }
  return null;
}

function push(out: StatusRun[], length: number, flags: number): void {
  if (length <= 0) return;
  const last = out[out.length - 1];
  if (last !== undefined && last.flags === flags) last.length += length;
  else out.push({ length, flags });
}

/**
 * Status runs of [offset, offset+length) for one context, at most `maxRuns`
 * (the reply may then cover less than asked, as the protocol allows).
 */
export async function statusRuns(
  device: BlockDevice,
  context: MetaContext,
  offset: number,
  length: number,
  maxRuns: number,
): Promise<StatusRun[]> {
  if (context.since !== null) return changeRuns(device, context.since, offset, length, maxRuns);
  if (device.extents === undefined) return [{ length, flags: 0 }];
  return allocationRuns(await device.extents(offset, length, maxRuns), maxRuns);
}

/**
 * statusRuns() answered synchronously, or null when the device finds its holes
 * only asynchronously (no extentsNow). Throws what the device throws.
 */
export function statusRunsNow(device: BlockDevice, context: MetaContext, offset: number, length: number, maxRuns: number): StatusRun[] | null {
  if (context.since !== null) return changeRuns(device, context.since, offset, length, maxRuns);
  if (device.extents === undefined) return [{ length, flags: 0 }];
  if (device.extentsNow === undefined) return null;
  return allocationRuns(device.extentsNow(offset, length, maxRuns), maxRuns);
}

/** base:allocation: holes read as zeroes. */
function allocationRuns(extents: readonly BlockExtent[], maxRuns: number): StatusRun[] {
  const out: StatusRun[] = [];
  for (const e of extents) {
    const flags = e.hole ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0;
    if (out.length >= maxRuns && out[out.length - 1]!.flags !== flags) break;
    push(out, e.length, flags);
  }
  return out;
}

/** A change context: blocks whose change number is newer than `since` are dirty. */
function changeRuns(device: BlockDevice, since: number, offset: number, length: number, maxRuns: number): StatusRun[] {
  const map = device.changeMap?.();
  if (map === undefined) return [{ length, flags: 0 }];
  const out: StatusRun[] = [];
  const end = offset + length;
  const bs = map.blockBytes;
  let pos = offset;
  while (pos < end) {
    const block = Math.floor(pos / bs);
    const next = Math.min(end, (block + 1) * bs);
    const flags = (map.numbers[block] ?? 0) > since ? NBD_STATE_DIRTY : 0;
    if (out.length >= maxRuns && out[out.length - 1]!.flags !== flags) break;
    push(out, next - pos, flags);
    pos = next;
  }
  return out;
}
