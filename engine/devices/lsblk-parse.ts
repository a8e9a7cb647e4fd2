/**
 * Parsing of `lsblk --json --bytes --output NAME,PATH,MAJ:MIN,SIZE,LOG-SEC,PHY-SEC,
 * MODEL,SERIAL,TYPE,FSTYPE,LABEL,MOUNTPOINTS,RO`. Pure. Accepts both the typed JSON of
 * util-linux >= 2.37 (numbers, booleans, a "mountpoints" array with nulls) and the
 * all-strings JSON of older versions ("ro": "0", "size": "512", "mountpoint").
 */
import { BlksnapError } from '../abi/errno.js';
import type { BlockDeviceEntry } from './block-device-entry.js';

/** The columns asked for, in lsblk's spelling. */
export const LSBLK_COLUMNS = [
  'NAME',
  'PATH',
  'MAJ:MIN',
  'SIZE',
  'LOG-SEC',
  'PHY-SEC',
  'MODEL',
  'SERIAL',
  'TYPE',
  'FSTYPE',
  'LABEL',
  'MOUNTPOINTS',
  'RO',
] as const;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | null {
  if (typeof v === 'string') {
    const t = v.trim();
    return t === '' ? null : t;
  }
  if (typeof v === 'number') return String(v);
  return null;
}

function num(v: unknown, what: string, fallback?: number): number {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^\d+$/.test(v.trim())) return Number(v.trim());
  if (fallback !== undefined && (v === null || v === undefined)) return fallback;
  throw new BlksnapError('EINVAL', `lsblk: ${what} is not a number (${JSON.stringify(v)})`);
}

function bool(v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return v.trim() === '1' || v.trim().toLowerCase() === 'true';
  return false;
}

function mountpoints(dev: Json): string[] {
  const list = dev['mountpoints'];
  if (Array.isArray(list)) return list.filter((m): m is string => typeof m === 'string' && m !== '');
  const single = str(dev['mountpoint']);
  return single ? [single] : [];
}

function entry(dev: unknown): BlockDeviceEntry {
  if (!isObject(dev)) throw new BlksnapError('EINVAL', 'lsblk: a device is not an object');
  const name = str(dev['name']);
  if (!name) throw new BlksnapError('EINVAL', 'lsblk: a device has no name');
  const logical = num(dev['log-sec'], `${name} log-sec`, 512);
  const result: BlockDeviceEntry = {
    name,
    path: str(dev['path']) ?? `/dev/${name}`,
    majMin: str(dev['maj:min']) ?? '',
    size: num(dev['size'], `${name} size`, 0),
    logicalBlockSize: logical,
    physicalBlockSize: num(dev['phy-sec'], `${name} phy-sec`, logical),
    model: str(dev['model']),
    serial: str(dev['serial']),
    type: str(dev['type']) ?? 'disk',
    fstype: str(dev['fstype']),
    label: str(dev['label']),
    mountpoints: mountpoints(dev),
    readOnly: bool(dev['ro']),
  };
  const children = dev['children'];
  if (Array.isArray(children) && children.length > 0) result.children = children.map(entry);
  return result;
}

/** The device tree of lsblk's JSON output (text or already parsed). EINVAL when malformed. */
export function parseLsblkJson(input: string | unknown): BlockDeviceEntry[] {
  let data: unknown = input;
  if (typeof input === 'string') {
    try {
      data = JSON.parse(input);
    } catch {
      throw new BlksnapError('EINVAL', 'lsblk output is not JSON');
    }
  }
  if (!isObject(data) || !Array.isArray(data['blockdevices'])) {
    throw new BlksnapError('EINVAL', 'lsblk output has no "blockdevices" array');
  }
  return data['blockdevices'].map(entry);
}
