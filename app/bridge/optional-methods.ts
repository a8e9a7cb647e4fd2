/**
 * Helper methods and notifications the app uses that the protocol table may not
 * have yet (the write workload). A method missing from engine/protocol/methods.ts
 * is answered here with ENOSYS instead of being sent (the client could not check
 * its result); once the table has it, it is called like any other.
 */
import { z } from 'zod';
import type { HelperClient } from '../../engine/protocol/client.js';
import { isMethodName, notifications } from '../../engine/protocol/methods.js';
import type { NotificationName } from '../../engine/protocol/methods.js';
import type { WorkloadProgress } from '../shared/types.js';
import { BridgeError } from './errors.js';

/** The helper notification carrying WorkloadProgress (topic "workload"). */
export const WORKLOAD_NOTIFICATION = 'workload';

export async function callOptional(client: HelperClient, method: string, params: Record<string, unknown>): Promise<unknown> {
  if (!isMethodName(method)) {
    throw new BridgeError('ENOSYS', 'This helper cannot run write workloads yet.', `protocol method "${method}" is not in engine/protocol/methods.ts`);
  }
  return client.call(method, params as never);
}

export function hasNotification(name: string): name is NotificationName {
  return Object.prototype.hasOwnProperty.call(notifications, name);
}

/** Registers a handler when the protocol has the notification; else does nothing. */
export function onOptionalNotification(client: HelperClient, name: string, handler: (params: unknown) => void): () => void {
  if (!hasNotification(name)) return () => {};
  return client.on(name, handler);
}

const WorkloadProgressSchema = z.object({
  device: z.string(),
  running: z.boolean(),
  pattern: z.enum(['random', 'sequential', 'hotspot']),
  rateMiBps: z.number(),
  actualMiBps: z.number(),
  bytesWritten: z.number(),
  writes: z.number(),
  elapsedMs: z.number(),
  error: z.string().optional(),
});

export function parseWorkloadProgress(params: unknown): WorkloadProgress | null {
  const parsed = WorkloadProgressSchema.safeParse(params);
  if (!parsed.success) return null;
  const { error, ...rest } = parsed.data;
  return error === undefined ? rest : { ...rest, error };
}
