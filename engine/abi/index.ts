export * from './errno.js';
export * from './types.js';
export type { BlksnapDriver } from './driver.js';
