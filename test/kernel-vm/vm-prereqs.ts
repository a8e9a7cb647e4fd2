/**
 * What the VM test needs on the host, and why it cannot run when something is
 * missing: root, qemu-system-x86_64, a Debian cloud kernel with its headers (the
 * module is built against them), busybox-static and cpio (the initramfs), and the
 * VAL-7.0 module source in ../shared/peers. scripts/install-system-deps.sh installs
 * the packages where it can (root with apt).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { hasCommand, isRoot } from '../helpers/env.js';

export const PEERS_VAL7_MODULE = join(import.meta.dirname, '..', '..', '..', 'shared', 'peers', 'veeamblksnap-VAL-7.0', 'module');

export interface VmHost {
  /** Kernel release of the cloud kernel, e.g. 6.1.0-57-cloud-amd64. */
  kernelRelease: string;
  vmlinuz: string;
  /** The kernel's kbuild directory (/lib/modules/KVER/build). */
  kbuild: string;
  /** The kernel's installed modules (virtio_blk and its dependencies come from here). */
  modulesDir: string;
  busybox: string;
}

/** The newest installed *-cloud-amd64 kernel that has its headers, or null. */
function cloudKernel(): string | null {
  let names: string[];
  try {
    names = readdirSync('/boot');
  } catch {
    return null;
  }
  const releases = names
    .filter((n) => /^vmlinuz-.*-cloud-amd64$/.test(n))
    .map((n) => n.slice('vmlinuz-'.length))
    .filter((r) => existsSync(`/lib/modules/${r}/build/Makefile`))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  return releases.at(-1) ?? null;
}

/** The host's VM ingredients, or the reason the VM test cannot run here. */
export function vmHost(): { host: VmHost; reason: null } | { host: null; reason: string } {
  const missing: string[] = [];
  if (!isRoot) missing.push('root (the guest image holds root-only device nodes and the test reads /boot)');
  if (!hasCommand('qemu-system-x86_64')) missing.push('qemu-system-x86_64 (package qemu-system-x86)');
  if (!hasCommand('cpio')) missing.push('cpio');
  const busybox = '/bin/busybox';
  if (!existsSync(busybox)) missing.push('busybox (package busybox-static)');
  if (!existsSync(PEERS_VAL7_MODULE)) missing.push(`the VAL-7.0 module source at ${PEERS_VAL7_MODULE}`);
  const release = cloudKernel();
  if (!release) missing.push('a cloud kernel with headers (packages linux-image-cloud-amd64 linux-headers-cloud-amd64)');
  if (missing.length > 0 || !release) return { host: null, reason: `the VM test needs ${missing.join(', ')}` };
  return {
    host: {
      kernelRelease: release,
      vmlinuz: `/boot/vmlinuz-${release}`,
      kbuild: `/lib/modules/${release}/build`,
      modulesDir: `/lib/modules/${release}`,
      busybox,
    },
    reason: null,
  };
}
