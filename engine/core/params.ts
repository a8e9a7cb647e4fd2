/**
 * Module parameters of blksnap (seed 001, main.c), with the module's defaults.
 * Each embedded engine instance has its own copy, so tests can use small values.
 */
export interface ModuleParams {
  /** Power of 2 of the minimum tracking (CBT) block size. */
  trackingBlockMinimumShift: number;
  /** Maximum number of tracking blocks (the block grows until the count fits). */
  trackingBlockMaximumCount: number;
  /** Power of 2 of the maximum tracking block size. */
  trackingBlockMaximumShift: number;
  /** Power of 2 of the minimum chunk (copy-on-write unit) size. */
  chunkMinimumShift: number;
  /** Power of 2 of the maximum number of chunks of one device. */
  chunkMaximumCountShift: number;
  /** Power of 2 of the maximum chunk size. */
  chunkMaximumShift: number;
  /** Chunks held in memory before the store worker writes them to the difference storage. */
  chunkMaximumInQueue: number;
  /** Free chunk buffers kept per device for reuse. */
  freeDiffBufferPoolSize: number;
  /** The portion (in sectors) by which the difference storage grows. */
  diffStorageMinimum: number;
}

export const DEFAULT_PARAMS: Readonly<ModuleParams> = Object.freeze({
  trackingBlockMinimumShift: 16,
  trackingBlockMaximumCount: 2097152,
  trackingBlockMaximumShift: 26,
  chunkMinimumShift: 18,
  chunkMaximumCountShift: 40,
  chunkMaximumShift: 26,
  chunkMaximumInQueue: 16,
  freeDiffBufferPoolSize: 128,
  diffStorageMinimum: 2097152,
});

function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`module parameter ${name} must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
}

/**
 * The defaults overridden by `overrides`, corrected as parameters_init() in main.c
 * does (a maximum shift below its minimum is raised to the minimum; the chunk count
 * shift is capped at 64, here at 52 so that counts stay exact JS numbers).
 */
export function resolveParams(overrides: Partial<ModuleParams> = {}): ModuleParams {
  const p: ModuleParams = { ...DEFAULT_PARAMS };
  for (const key of Object.keys(DEFAULT_PARAMS) as (keyof ModuleParams)[]) {
    const v = overrides[key];
    if (v !== undefined) p[key] = v;
  }
  // Shifts below 9 would make a block smaller than a sector.
  checkInt('trackingBlockMinimumShift', p.trackingBlockMinimumShift, 9, 40);
  checkInt('trackingBlockMaximumShift', p.trackingBlockMaximumShift, 9, 40);
  checkInt('trackingBlockMaximumCount', p.trackingBlockMaximumCount, 1, 2 ** 32 - 1);
  checkInt('chunkMinimumShift', p.chunkMinimumShift, 9, 30);
  checkInt('chunkMaximumShift', p.chunkMaximumShift, 9, 30);
  checkInt('chunkMaximumCountShift', p.chunkMaximumCountShift, 0, 64);
  checkInt('chunkMaximumInQueue', p.chunkMaximumInQueue, 0, 1 << 20);
  checkInt('freeDiffBufferPoolSize', p.freeDiffBufferPoolSize, 0, 1 << 20);
  checkInt('diffStorageMinimum', p.diffStorageMinimum, 1, 2 ** 40);
  if (p.trackingBlockMaximumShift < p.trackingBlockMinimumShift) {
    p.trackingBlockMaximumShift = p.trackingBlockMinimumShift;
  }
  if (p.chunkMaximumShift < p.chunkMinimumShift) p.chunkMaximumShift = p.chunkMinimumShift;
  p.chunkMaximumCountShift = Math.min(52, p.chunkMaximumCountShift);
  return p;
}
