import type { BlksnapApi } from '../../../app/shared/contract.js';
import type { WorkloadPattern, WorkloadProgress } from '../../../app/shared/types.js';
import type { ActionError, GetState, SetState } from './types.js';

/** Workload progress as stored: rounded, so frequent progress events rarely re-render. */
export interface WorkloadView {
  running: boolean;
  pattern: WorkloadPattern;
  rateMiBps: number;
  /** Measured rate, to 0.1 MiB/s. */
  actualMiBps: number;
  /** Bytes written, in whole MiB. */
  writtenMiB: number;
  /** Elapsed whole seconds. */
  elapsedS: number;
  error: string | null;
}

export function roundProgress(p: WorkloadProgress): WorkloadView {
  return {
    running: p.running,
    pattern: p.pattern,
    rateMiBps: p.rateMiBps,
    actualMiBps: Math.round(p.actualMiBps * 10) / 10,
    writtenMiB: Math.floor(p.bytesWritten / (1024 * 1024)),
    elapsedS: Math.floor(p.elapsedMs / 1000),
    error: p.error ?? null,
  };
}

function sameView(a: WorkloadView | undefined, b: WorkloadView): boolean {
  return (
    a !== undefined &&
    a.running === b.running &&
    a.pattern === b.pattern &&
    a.rateMiBps === b.rateMiBps &&
    a.actualMiBps === b.actualMiBps &&
    a.writtenMiB === b.writtenMiB &&
    a.elapsedS === b.elapsedS &&
    a.error === b.error
  );
}

export interface WorkloadSlice {
  /** By device id. */
  workloads: Record<string, WorkloadView>;
  applyWorkloadProgress(progress: WorkloadProgress): void;
  startWorkload(device: string, rateMiBps: number, pattern: WorkloadPattern): Promise<ActionError>;
  stopWorkload(device: string): Promise<ActionError>;
}

export function createWorkloadSlice(api: BlksnapApi, set: SetState, get: GetState): WorkloadSlice {
  return {
    workloads: {},
    applyWorkloadProgress(progress) {
      const view = roundProgress(progress);
      const current = get().workloads[progress.device];
      if (sameView(current, view)) return;
      set((s) => ({ workloads: { ...s.workloads, [progress.device]: view } }));
    },
    async startWorkload(device, rateMiBps, pattern) {
      const r = await api.workloadStart({ device, rateMiBps, pattern });
      if (!r.ok) return r.error;
      const previous = get().workloads[device];
      set((s) => ({
        workloads: {
          ...s.workloads,
          [device]: {
            running: true,
            pattern,
            rateMiBps,
            actualMiBps: 0,
            writtenMiB: 0,
            elapsedS: 0,
            error: null,
            ...(previous?.running ? previous : {}),
          },
        },
        notice: { kind: 'info', text: `Workload started on ${device}.` },
      }));
      return null;
    },
    async stopWorkload(device) {
      const r = await api.workloadStop({ device });
      if (!r.ok && r.error.code !== 'ESRCH') return r.error;
      set((s) => {
        const current = s.workloads[device];
        const workloads = current ? { ...s.workloads, [device]: { ...current, running: false } } : s.workloads;
        return { workloads, notice: { kind: 'info', text: `Workload stopped on ${device}.` } };
      });
      return null;
    },
  };
}
