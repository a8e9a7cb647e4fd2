/**
 * The name the Lab disk form suggests: `disk1`, `disk2`, ... the first one no device
 * uses as its id or name, and none of `alsoTaken` (names whose image file exists).
 */
export function nextFreeName(devices: readonly { id: string; name: string }[], base = 'disk', alsoTaken: readonly string[] = []): string {
  const taken = takenNames(devices, alsoTaken);
  for (let n = 1; ; n++) {
    const candidate = `${base}${n}`;
    if (!taken.has(candidate)) return candidate;
  }
}

/** Every id and name of the devices, and `alsoTaken`. */
export function takenNames(devices: readonly { id: string; name: string }[], alsoTaken: readonly string[] = []): Set<string> {
  const taken = new Set<string>(alsoTaken);
  for (const d of devices) {
    taken.add(d.id);
    taken.add(d.name);
  }
  return taken;
}
