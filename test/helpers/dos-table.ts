/** DOS (MBR) partition sectors for tests: entries of 16 bytes at 446, the 0x55AA signature. */

/** Writes entry `slot` (0-3) of an MBR or EBR sector: type, first LBA, sectors. */
export function putMbrEntry(sector: Buffer, slot: number, type: number, firstLba: number, sectors: number): void {
  const at = 446 + slot * 16;
  sector[at + 4] = type;
  sector.writeUInt32LE(firstLba, at + 8);
  sector.writeUInt32LE(sectors, at + 12);
}

/** Gives `sector` the boot signature; returns it. */
export function signed(sector: Buffer): Buffer {
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

/** A signed MBR sector with Linux (0x83) primary partitions, in slot order. */
export function dosTable(partitions: { firstLba: number; sectors: number }[]): Buffer {
  const mbr = Buffer.alloc(512);
  partitions.forEach((p, slot) => putMbrEntry(mbr, slot, 0x83, p.firstLba, p.sectors));
  return signed(mbr);
}
