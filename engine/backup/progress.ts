/** Progress and cancellation for the long backup jobs (backup, verify, restore). */
import { BlksnapError } from '../abi/errno.js';

export interface Progress {
  /** Bytes processed so far. */
  done: number;
  /** Bytes the job will process in all. */
  total: number;
}

export interface JobOptions {
  /** Called as the job advances (at least at the start and at the end). */
  onProgress?: (progress: Progress) => void;
  /** Cancels the job: it stops, removes what it had written and rejects with ECANCELED. */
  signal?: AbortSignal;
}

/** Throws ECANCELED when the job was cancelled. */
export function checkCancelled(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new BlksnapError('ECANCELED', `the ${what} was cancelled`);
}
