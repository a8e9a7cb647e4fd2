/**
 * What a backup point counts as changed (pure): the tracking blocks whose CBT change
 * number is newer than the parent point's, and their bytes, changed blocks x block
 * size, at most the device size. The heatmap's predicted size
 * (renderer/src/features/heatmap/aggregate.ts predictedIncrementBytes) computes the
 * same; test/renderer/features/heatmap/predicted-size.test.ts checks they agree.
 */

/** Blocks [0, blockCount) of `cbtMap` with a change number greater than `sinceChangeNumber`. */
export function changedBlockCount(cbtMap: Uint8Array, sinceChangeNumber: number, blockCount = cbtMap.length): number {
  let n = 0;
  const end = Math.min(blockCount, cbtMap.length);
  for (let b = 0; b < end; b++) if ((cbtMap[b] as number) > sinceChangeNumber) n++;
  return n;
}

/** Bytes of `changedBlocks` tracking blocks of `blockSize`, at most the device's `deviceSize`. */
export function changedBytes(changedBlocks: number, blockSize: number, deviceSize: number): number {
  return Math.min(changedBlocks * blockSize, deviceSize);
}
