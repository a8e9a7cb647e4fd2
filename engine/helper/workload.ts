/**
 * Write workloads on engine devices (the UI's "generate writes" on the Devices
 * screen): 64 KiB writes of random data through a BlockDevice (so they go through
 * the tracker and copy-on-write like any other writer) at a rate in MiB/s, with a
 * random, sequential or hotspot (90% of the writes in 10% of the device) pattern,
 * until stopped. Progress is reported at most every 250 ms while running, and once
 * more when the workload ends (running false; `error` set when a write failed).
 *
 * WorkloadManager keeps one runner per device for the helper's workload.start /
 * workload.stop methods (EALREADY / ESRCH) and forwards progress to a notifier.
 */
import { randomFillSync } from 'node:crypto';
import { BlksnapError } from '../abi/errno.js';
import type { BlockDevice } from '../core/block-device.js';

export type WorkloadPattern = 'random' | 'sequential' | 'hotspot';

export const WORKLOAD_PATTERNS: readonly WorkloadPattern[] = ['random', 'sequential', 'hotspot'];
export const WORKLOAD_WRITE_SIZE = 64 * 1024;
export const WORKLOAD_PROGRESS_INTERVAL_MS = 250;
/** Hotspot pattern: this share of the writes lands in HOTSPOT_AREA of the device. */
export const HOTSPOT_SHARE = 0.9;
export const HOTSPOT_AREA = 0.1;
const MIB = 1024 * 1024;
const SECTOR = 512;

/** The same shape as the contract's WorkloadProgress (app/shared/types.ts). */
export interface WorkloadProgress {
  device: string;
  running: boolean;
  pattern: WorkloadPattern;
  rateMiBps: number;
  /** Measured over the last interval. */
  actualMiBps: number;
  bytesWritten: number;
  writes: number;
  elapsedMs: number;
  error?: string;
}

export interface WorkloadOptions {
  /** The name reported in progress (default device.name). */
  name?: string;
  device: BlockDevice;
  rateMiBps: number;
  pattern: WorkloadPattern;
  onProgress?: (progress: WorkloadProgress) => void;
  /** Default 64 KiB (clamped to the capacity, sector-aligned). */
  writeSize?: number;
  /** Default 250 ms. */
  progressIntervalMs?: number;
  /** Uniform [0, 1) for offsets (tests pass a seeded one). */
  random?: () => number;
}

/** The byte offset of the next write for a pattern (slot = writeSize-aligned block). */
export class OffsetPicker {
  private cursor = 0;
  private readonly hotStart: number;
  private readonly hotSlots: number;

  constructor(
    private readonly pattern: WorkloadPattern,
    private readonly slots: number,
    private readonly writeSize: number,
    private readonly random: () => number,
  ) {
    this.hotSlots = Math.max(1, Math.floor(slots * HOTSPOT_AREA));
    this.hotStart = Math.floor(random() * (slots - this.hotSlots + 1));
  }

  /** The hot region in bytes [start, end) (hotspot pattern). */
  get hotRange(): { start: number; end: number } {
    return { start: this.hotStart * this.writeSize, end: (this.hotStart + this.hotSlots) * this.writeSize };
  }

  next(): number {
    let slot: number;
    switch (this.pattern) {
      case 'sequential':
        slot = this.cursor;
        this.cursor = (this.cursor + 1) % this.slots;
        break;
      case 'hotspot':
        slot =
          this.random() < HOTSPOT_SHARE
            ? this.hotStart + Math.floor(this.random() * this.hotSlots)
            : Math.floor(this.random() * this.slots);
        break;
      default:
        slot = Math.floor(this.random() * this.slots);
    }
    return Math.min(slot, this.slots - 1) * this.writeSize;
  }
}

/** How far behind its schedule a workload may catch up after a stall (ms of writes at its rate). */
export const MAX_CATCH_UP_MS = 250;

export class WorkloadRunner {
  readonly name: string;
  readonly writeSize: number;
  private readonly picker: OffsetPicker;
  private readonly intervalMs: number;
  private bytesWritten = 0;
  private writes = 0;
  private startedAt = 0;
  /** Where the pacing counts from: moved on after a stall, so the workload never bursts to catch up. */
  private paceFrom = 0;
  private lastReportAt = 0;
  private lastReportBytes = 0;
  private actualMiBps = 0;
  private error: string | undefined;
  private stopping = false;
  private active = false;
  private wake: (() => void) | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private loop: Promise<void> | null = null;

  constructor(private readonly options: WorkloadOptions) {
    if (!(options.rateMiBps > 0) || !Number.isFinite(options.rateMiBps)) {
      throw new BlksnapError('EINVAL', `the write rate must be a positive number of MiB/s, got ${options.rateMiBps}`);
    }
    if (!WORKLOAD_PATTERNS.includes(options.pattern)) throw new BlksnapError('EINVAL', `unknown workload pattern "${String(options.pattern)}"`);
    if (options.device.readOnly) throw new BlksnapError('EROFS', `${options.device.name} is read-only`);
    const wanted = options.writeSize ?? WORKLOAD_WRITE_SIZE;
    const size = Math.floor(Math.min(wanted, options.device.capacity) / SECTOR) * SECTOR;
    if (size < SECTOR) throw new BlksnapError('EINVAL', `${options.device.name} is too small for a write workload`);
    this.name = options.name ?? options.device.name;
    this.writeSize = size;
    this.intervalMs = options.progressIntervalMs ?? WORKLOAD_PROGRESS_INTERVAL_MS;
    const slots = Math.floor(options.device.capacity / size);
    this.picker = new OffsetPicker(options.pattern, slots, size, options.random ?? Math.random);
  }

  get running(): boolean {
    return this.active;
  }

  get hotRange(): { start: number; end: number } {
    return this.picker.hotRange;
  }

  get progress(): WorkloadProgress {
    const p: WorkloadProgress = {
      device: this.name,
      running: this.active,
      pattern: this.options.pattern,
      rateMiBps: this.options.rateMiBps,
      actualMiBps: this.actualMiBps,
      bytesWritten: this.bytesWritten,
      writes: this.writes,
      elapsedMs: this.active ? Date.now() - this.startedAt : this.lastReportAt - this.startedAt,
    };
    if (this.error !== undefined) p.error = this.error;
    return p;
  }

  /** Starts writing; `done` resolves when the workload has ended (stopped or failed). */
  start(): void {
    if (this.loop !== null) throw new BlksnapError('EALREADY', `the workload on ${this.name} has already started`);
    this.active = true;
    this.startedAt = Date.now();
    this.paceFrom = this.startedAt;
    this.lastReportAt = this.startedAt;
    this.timer = setInterval(() => this.report(), this.intervalMs);
    this.loop = this.run().finally(() => this.finish());
  }

  get done(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  /** Stops after the write in flight; resolves with the final progress. */
  async stop(): Promise<WorkloadProgress> {
    this.stopping = true;
    this.wake?.();
    await this.done;
    return this.progress;
  }

  private measure(): void {
    const now = Date.now();
    const ms = now - this.lastReportAt;
    if (ms > 0) this.actualMiBps = (this.bytesWritten - this.lastReportBytes) / MIB / (ms / 1000);
    this.lastReportAt = now;
    this.lastReportBytes = this.bytesWritten;
  }

  private report(): void {
    if (!this.active) return;
    this.measure();
    this.options.onProgress?.(this.progress);
  }

  private finish(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.measure();
    this.active = false;
    this.options.onProgress?.(this.progress);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = null;
        resolve();
      };
    });
  }

  private async run(): Promise<void> {
    const bytesPerMs = (this.options.rateMiBps * MIB) / 1000;
    while (!this.stopping) {
      // The write after this one is due when the bytes so far match the rate.
      const dueAt = this.paceFrom + (this.bytesWritten + this.writeSize) / bytesPerMs;
      const wait = dueAt - Date.now();
      // Behind after a stall (a slow device, a busy machine): what was missed is not made
      // up in a burst above the rate asked for; at most MAX_CATCH_UP_MS of writes are.
      if (wait < -MAX_CATCH_UP_MS) this.paceFrom += -wait - MAX_CATCH_UP_MS;
      if (wait > 1) {
        await this.sleep(Math.min(wait, 1000));
        continue;
      }
      const data = Buffer.allocUnsafe(this.writeSize);
      randomFillSync(data);
      try {
        await this.options.device.write(this.picker.next(), data);
      } catch (error) {
        this.error = error instanceof Error ? error.message : String(error);
        return;
      }
      this.bytesWritten += this.writeSize;
      this.writes++;
      // Let timers and other clients run even at rates the device can barely keep up with.
      if (this.writes % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

export interface WorkloadStartOptions {
  name: string;
  device: BlockDevice;
  rateMiBps: number;
  pattern: WorkloadPattern;
}

/** One workload per device, for the helper (workload.start / workload.stop). */
export class WorkloadManager {
  private readonly runners = new Map<string, WorkloadRunner>();

  constructor(
    private readonly notify: (progress: WorkloadProgress) => void,
    private readonly defaults: Pick<WorkloadOptions, 'writeSize' | 'progressIntervalMs'> = {},
  ) {}

  /** EALREADY when one runs on the device already. */
  start(options: WorkloadStartOptions): WorkloadProgress {
    const existing = this.runners.get(options.name);
    if (existing?.running) throw new BlksnapError('EALREADY', `a workload is already running on ${options.name}`);
    const runner = new WorkloadRunner({ ...this.defaults, ...options, onProgress: (p) => this.notify(p) });
    this.runners.set(options.name, runner);
    runner.start();
    void runner.done.then(() => {
      if (this.runners.get(options.name) === runner) this.runners.delete(options.name);
    });
    return runner.progress;
  }

  /** ESRCH when none runs on the device. */
  async stop(name: string): Promise<WorkloadProgress> {
    const runner = this.runners.get(name);
    if (runner === undefined || !runner.running) throw new BlksnapError('ESRCH', `no workload is running on ${name}`);
    this.runners.delete(name);
    return runner.stop();
  }

  list(): WorkloadProgress[] {
    return [...this.runners.values()].map((r) => r.progress);
  }

  has(name: string): boolean {
    return this.runners.get(name)?.running ?? false;
  }

  async stopAll(): Promise<void> {
    const runners = [...this.runners.values()];
    this.runners.clear();
    await Promise.all(runners.map((r) => r.stop()));
  }
}
