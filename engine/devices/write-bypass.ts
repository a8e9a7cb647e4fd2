/**
 * Write paths around the embedded engine (pure). The engine sees only the writes that
 * reach it (its NBD export, the write workload). A filesystem mounted from the same
 * bytes by another way (the image file attached to a loop device, or the fronted block
 * device itself or one of its partitions) is written behind its back: a snapshot then
 * misses those writes and the change map does not show them.
 */

/** What the check needs of each block device of the tree. */
export interface WritePathDevice {
  path: string;
  mountpoints: string[];
  /** Paths of the devices it sits on. */
  parents: string[];
  /** Loop devices: the file it is attached to, else null. */
  backingFile: string | null;
}

/** Each device with every device stacked on it (partitions, dm, md), nearest first. */
function stackedOn(devices: WritePathDevice[], root: string): WritePathDevice[] {
  const out: WritePathDevice[] = [];
  const seen = new Set<string>([root]);
  let frontier = [root];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const d of devices) {
      if (seen.has(d.path) || !d.parents.some((p) => frontier.includes(p))) continue;
      seen.add(d.path);
      out.push(d);
      next.push(d.path);
    }
    frontier = next;
  }
  return out;
}

function mountedIn(devices: WritePathDevice[], root: WritePathDevice): string[] {
  return [root, ...stackedOn(devices, root.path)]
    .filter((d) => d.mountpoints.length > 0)
    .map((d) => `${d.path} is mounted at ${d.mountpoints.join(', ')}`);
}

/**
 * Why writes to the engine device on `enginePath` (an image file, or a fronted block
 * device /dev/...) may bypass the engine, in plain words; [] when no mounted
 * filesystem reaches the same bytes another way.
 */
export function writeBypass(enginePath: string, devices: WritePathDevice[]): string[] {
  const out: string[] = [];
  const fronted = devices.find((d) => d.path === enginePath);
  if (fronted) {
    for (const m of mountedIn(devices, fronted)) out.push(`${m}: writes there go to the disk directly, not through the engine`);
  }
  for (const loop of devices.filter((d) => d.backingFile === enginePath)) {
    for (const m of mountedIn(devices, loop)) out.push(`the image is attached to ${loop.path} and ${m}: writes there bypass the engine`);
  }
  return out;
}
