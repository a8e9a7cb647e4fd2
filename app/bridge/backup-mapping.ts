/**
 * Helper backup protocol data -> contract data (pure). The helper client has already
 * validated every result against the protocol schemas (engine/protocol); these copy
 * the fields the contract carries, so an optional field the helper adds later does
 * not leak to the renderer unchecked.
 */
import type { MethodResult, NotificationParams } from '../../engine/protocol/methods.js';
import type { BackupCatalog, BackupExport, BackupPlan, JobEntry, JobResult } from '../shared/types.js';

type HelperJob = NotificationParams<'job'>;
type HelperJobResult = NonNullable<MethodResult<'jobs.wait'>['job']['result']>;

export function toBackupPlan(plan: MethodResult<'backup.plan'>): BackupPlan {
  return {
    devices: plan.devices.map((d) => ({
      device: d.device,
      chainDir: d.chainDir,
      points: d.points,
      lastPoint: d.lastPoint === null ? null : { id: d.lastPoint.id, kind: d.lastPoint.kind, time: d.lastPoint.time },
      allowed: [...d.allowed],
      reason: d.reason,
      changedBytes: d.changedBytes,
    })),
  };
}

function toJobResult(r: HelperJobResult | null | undefined): JobResult | null {
  if (r === null || r === undefined) return null;
  switch (r.kind) {
    case 'backup':
      return {
        kind: 'backup',
        points: r.points.map((p) => ({
          device: p.device,
          chainDir: p.chainDir,
          pointId: p.pointId,
          pointKind: p.pointKind,
          fullBecause: p.fullBecause,
          bytesWritten: p.bytesWritten,
          changedBytes: p.changedBytes,
        })),
      };
    case 'verify':
      return { kind: 'verify', ok: r.ok, points: r.points.map((p) => ({ pointId: p.pointId, ok: p.ok, problem: p.problem })) };
    case 'restore':
      return { kind: 'restore', target: r.target, bytes: r.bytes, sha256: r.sha256, matchesManifest: r.matchesManifest };
  }
}

export function toJobEntry(job: HelperJob | MethodResult<'jobs.wait'>['job']): JobEntry {
  return {
    jobId: job.jobId,
    kind: job.kind,
    state: job.state,
    title: job.title,
    done: job.done,
    total: job.total,
    bytesPerSecond: job.bytesPerSecond,
    etaSeconds: job.etaSeconds,
    startedAt: job.startedAt,
    endedAt: job.endedAt,
    error: job.error === null ? null : { code: job.error.code, message: job.error.message },
    warnings: [...job.warnings],
    result: toJobResult('result' in job ? job.result : null),
  };
}

export function toCatalog(c: MethodResult<'backup.catalog'>): BackupCatalog {
  return {
    dir: c.dir,
    spaceUsed: c.spaceUsed,
    chains: c.chains.map((chain) => ({
      chainDir: chain.chainDir,
      device: { path: chain.device.path, size: chain.device.size, model: chain.device.model, serial: chain.device.serial },
      points: chain.points.map((p) => ({
        id: p.id,
        kind: p.kind,
        time: p.time,
        parent: p.parent,
        fileSize: p.fileSize,
        changedBytes: p.changedBytes,
        verify: p.verify,
        verifiedAt: p.verifiedAt,
        file: p.file,
      })),
    })),
  };
}

export function toBackupExport(e: MethodResult<'backup.export'>): BackupExport {
  return { name: e.name, uri: e.uri, readOnly: true, mountHint: e.mountHint };
}
