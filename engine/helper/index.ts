export { runDaemon, startDaemon } from './daemon.js';
export type { DaemonHandle, DaemonOptions } from './daemon.js';
export { chooseDriverKind } from './driver-select.js';
export type { DriverChoice } from './driver-select.js';
