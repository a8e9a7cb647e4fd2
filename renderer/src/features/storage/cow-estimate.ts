/**
 * Copy-on-write amplification (pure): while a snapshot is held, the first write into
 * a chunk copies the whole chunk into the difference storage, however small the
 * write. So the storage a workload needs is the number of distinct chunks it touches
 * times the chunk size, not the bytes it writes nor the changed tracking blocks.
 */

/** blksnap's default chunk size (chunk_minimum_shift 18): the unit copied on first write. */
export const DEFAULT_CHUNK_BYTES = 256 * 1024;
/** The lab workload's write size (64 KiB writes, aligned: each lands in one chunk). */
export const WORKLOAD_WRITE_BYTES = 64 * 1024;
/** How long a snapshot is planned to be held when the storage is sized. */
export const PLANNED_HOLD_SECONDS = 600;
/** Room on top of the expected copy for bursts. */
export const COW_HEADROOM = 1.25;

export interface WritePlan {
  /** Bytes the writes are expected to write while the snapshot is held. */
  writtenBytes: number;
  /** Size of each write. */
  writeBytes: number;
  /** The engine's chunk size. */
  chunkBytes: number;
}

/** Chunks of `chunkBytes` covering devices of these sizes (a partial chunk counts). */
export function chunkCount(sizes: number[], chunkBytes: number): number {
  return sizes.reduce((a, s) => a + Math.ceil(s / chunkBytes), 0);
}

/**
 * Expected bytes copied into the difference storage by writes at uniformly random
 * offsets: n writes over C chunks touch C·(1 − e^(−n/C)) distinct chunks on average,
 * each copied once at chunk size. Never more than the chunks the devices have.
 */
export function expectedCopiedBytes(sizes: number[], plan: WritePlan): number {
  const chunks = chunkCount(sizes, plan.chunkBytes);
  if (chunks === 0 || plan.writtenBytes <= 0) return 0;
  const chunksPerWrite = Math.max(1, Math.ceil(plan.writeBytes / plan.chunkBytes));
  const writes = Math.ceil(plan.writtenBytes / plan.writeBytes) * chunksPerWrite;
  const touched = chunks * (1 - Math.exp(-writes / chunks));
  return Math.min(chunks, Math.ceil(touched)) * plan.chunkBytes;
}

/** The write plan for a workload at `rateMiBps` during the planned hold. */
export function workloadPlan(rateMiBps: number, chunkBytes = DEFAULT_CHUNK_BYTES): WritePlan {
  return {
    writtenBytes: rateMiBps * 1024 * 1024 * PLANNED_HOLD_SECONDS,
    writeBytes: WORKLOAD_WRITE_BYTES,
    chunkBytes,
  };
}
