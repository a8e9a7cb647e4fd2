/**
 * Validation of request params (zod, pure). Main and the browser-mode server run every
 * incoming request through validateParams before calling the helper: in browser mode
 * the params come from a network peer, and in Electron from a sandboxed page.
 */
import { z } from 'zod';
import type { RequestName, RequestParams } from './contract.js';
import { findControlChar } from './control-chars.js';
import { err, ok } from './result.js';
import type { Result } from './result.js';

/** Names and paths never carry control characters (the helper refuses them too). */
function noControlChars(schema: z.ZodString): z.ZodString {
  return schema.check((ctx) => {
    const found = findControlChar(ctx.value);
    if (found !== null) {
      ctx.issues.push({ code: 'custom', input: ctx.value, message: `contains the control character ${found.escaped} at position ${found.index}` });
    }
  });
}

const deviceRef = noControlChars(z.string().min(1).max(4096));
const path = noControlChars(z.string().min(1).max(4096));
const name = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" or "-", not starting with a punctuation mark');
const snapshotId = z.string().min(1).max(64);
const positiveBytes = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

const absolutePath = path.refine((p) => p.startsWith('/'), 'must be an absolute path');
const pointId = z.string().min(1).max(256);
const jobId = z.string().min(1).max(128);

const noParams = z.undefined();
const device = z.strictObject({ device: deviceRef });
const snapshot = z.strictObject({ snapshotId });

/** One schema per request (undefined for requests without params). */
export const PARAM_SCHEMAS: { [K in RequestName]: z.ZodType<RequestParams<K>> } = {
  getStatus: noParams,
  reconnect: noParams,
  listDevices: noParams,
  createLabDisk: z
    .strictObject({
      name: name.optional(),
      path: path.optional(),
      sizeBytes: positiveBytes.refine((n) => n % 512 === 0, 'size must be a multiple of 512 bytes'),
    })
    .refine((p) => p.name !== undefined || p.path !== undefined, 'give a name or a path'),
  addImage: z.strictObject({ path, name: name.optional() }),
  removeImage: device,
  listFilesystems: noParams,
  getStorageAllocation: noParams,
  setStorageAllocation: z.strictObject({ directory: path, limitBytes: positiveBytes.min(512, 'the limit must be at least 512 bytes') }),
  snapshotCreate: z.strictObject({
    devices: z.array(deviceRef).min(1).max(256),
    storagePath: path,
    storageForm: z.enum(['new-file', 'directory', 'existing-file', 'block-device']).optional(),
    limitBytes: positiveBytes,
    writableImages: z.boolean().optional(),
    name: z.string().trim().min(1).max(64).optional(),
  }),
  snapshotTake: snapshot,
  snapshotDestroy: snapshot,
  snapshotGrowStorage: z.strictObject({ snapshotId, addBytes: positiveBytes.min(512, 'grow by at least 512 bytes') }),
  listEventHistory: noParams,
  dismissEventHistory: snapshot,
  listSnapshots: noParams,
  cbtInfo: device,
  cbtMap: z.strictObject({ device: deviceRef, table: z.enum(['snapshot', 'active']).optional() }),
  workloadStart: z.strictObject({
    device: deviceRef,
    rateMiBps: z.number().positive().max(100_000),
    pattern: z.enum(['random', 'sequential', 'hotspot']),
  }),
  workloadStop: device,
  backupPlan: z.strictObject({
    dir: absolutePath,
    snapshotId: snapshotId.optional(),
    devices: z.array(deviceRef).min(1).max(256).optional(),
  }),
  backupStart: z.strictObject({
    snapshotId,
    dir: absolutePath,
    devices: z.array(deviceRef).min(1).max(256).optional(),
    kind: z.enum(['full', 'incremental', 'differential']),
    format: z.enum(['qcow2', 'raw']).optional(),
    compress: z.enum(['zlib', 'zstd']).optional(),
    allowFull: z.boolean().optional(),
  }),
  backupVerify: z.strictObject({ dir: absolutePath, point: pointId.optional(), compareWithSnapshot: z.boolean().optional() }),
  backupRestore: z.strictObject({ dir: absolutePath, point: pointId, target: absolutePath, force: z.boolean().optional() }),
  backupCatalog: z.strictObject({ dir: absolutePath }),
  backupExport: z.strictObject({ dir: absolutePath, point: pointId }),
  backupUnexport: z.strictObject({ name: z.string().min(1).max(256) }),
  jobsList: noParams,
  jobsCancel: z.strictObject({ jobId }),
  jobsWait: z.strictObject({ jobId, timeoutMs: z.number().int().min(0).max(600_000) }),
};

/**
 * Checks a request's params. Requests without params accept undefined or null (JSON
 * has no undefined) and yield undefined. Failure: EINVAL with the zod issues as detail.
 */
export function validateParams<K extends RequestName>(method: K, params: unknown): Result<RequestParams<K>> {
  const schema: z.ZodType<RequestParams<K>> = PARAM_SCHEMAS[method];
  const input = params === null ? undefined : params;
  const parsed = schema.safeParse(input);
  if (parsed.success) return ok(parsed.data);
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(params)'}: ${i.message}`).join('; ');
  return err('EINVAL', `Invalid parameters for ${method}.`, issues);
}
