/**
 * Boots the test guest under qemu TCG (this machine's KVM does not run guests) with
 * the serial console on stdout, and returns what the guest printed. The guest powers
 * itself off; a guest that does not is killed at the timeout.
 */
import { spawn } from 'node:child_process';

export interface BootOptions {
  kernel: string;
  initrd: string;
  /** Raw disk images, attached as virtio disks vda, vdb, ... in this order. */
  disks: string[];
  memoryMb: number;
  timeoutMs: number;
  /** Called with each serial line as it arrives (progress output). */
  onLine?: (line: string) => void;
  /** Appended to the kernel command line (the guest's /init reads vmmode=...). */
  kernelArgs?: string;
  /** More qemu arguments (e.g. a user-mode network with a forwarded port); default `-nic none`. */
  extraArgs?: string[];
  /** Stops the guest (SIGKILL) when aborted. */
  signal?: AbortSignal;
}

export interface BootResult {
  serial: string;
  ms: number;
  timedOut: boolean;
  exitCode: number | null;
}

export function bootGuest(options: BootOptions): Promise<BootResult> {
  const args = [
    '-accel', 'tcg',
    '-cpu', 'qemu64',
    '-m', `${options.memoryMb}M`,
    '-smp', '1',
    '-nographic',
    '-no-reboot',
    '-kernel', options.kernel,
    '-initrd', options.initrd,
    '-append', `console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init ${options.kernelArgs ?? ''}`.trim(),
    ...options.disks.flatMap((file) => ['-drive', `file=${file},format=raw,if=virtio,cache=unsafe`]),
    ...(options.extraArgs ?? ['-nic', 'none']),
  ];
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let serial = '';
    let pending = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      qemu.kill('SIGKILL');
    }, options.timeoutMs);
    options.signal?.addEventListener('abort', () => qemu.kill('SIGKILL'), { once: true });
    qemu.stdout.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      serial += text;
      pending += text;
      const lines = pending.split(/\r?\n/);
      pending = lines.pop() ?? '';
      for (const line of lines) options.onLine?.(line);
    });
    qemu.stderr.on('data', (chunk: Buffer) => (serial += chunk.toString('utf8')));
    qemu.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    qemu.on('close', (code) => {
      clearTimeout(timer);
      resolve({ serial, ms: Date.now() - started, timedOut, exitCode: code });
    });
  });
}
