/**
 * The name the Lab disk form suggests: `disk1`, `disk2`, ... the first one no device
 * uses as its id or name.
 */
export function nextFreeName(devices: readonly { id: string; name: string }[], base = 'disk'): string {
  const taken = new Set<string>();
  for (const d of devices) {
    taken.add(d.id);
    taken.add(d.name);
  }
  for (let n = 1; ; n++) {
    const candidate = `${base}${n}`;
    if (!taken.has(candidate)) return candidate;
  }
}
