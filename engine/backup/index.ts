/**
 * Image backups: the API the helper uses. Formats (qcow2 writer/reader, sparse raw),
 * backup points in chain folders with manifests, verify and restore. See docs/backup.md.
 */
export { backupPoint } from './backup-point.js';
export { changedBlockCount, changedBytes } from './changed-bytes.js';
export type { BackupPointRequest, BackupPointResult, ImageReader } from './backup-point.js';
export { ChainBreakError, loadPoints, planPoint, readVerifyRecord } from './chain.js';
export type { ChainBreak, ChainCbt, Plan, PlanRequest } from './chain.js';
export { blockHash } from './block-hash.js';
export { RawImage, readImage } from './image-source.js';
export type { ImageSource } from './image-source.js';
export type { ImageWriteSummary, ImageWriter } from './image-writer.js';
export { parseManifest } from './manifest.js';
export type { DeviceIdentity, Manifest, PointKind, VerifyRecord } from './manifest.js';
export type { JobOptions, Progress } from './progress.js';
export { Qcow2Image, openImage } from './qcow2-reader.js';
export { Qcow2Writer } from './qcow2-writer.js';
export type { Qcow2WriterOptions } from './qcow2-writer.js';
export { RawWriter } from './raw-writer.js';
export { restorePoint } from './restore.js';
export type { RestoreOptions, RestoreResult } from './restore.js';
export { findPoint, verifyChain, verifyPoint } from './verify.js';
export type { VerifyResult } from './verify.js';
