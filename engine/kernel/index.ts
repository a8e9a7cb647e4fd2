export * from './abi-structs.js';
export * from './ioctl-numbers.js';
export * from './ioctl-layer.js';
export { KoffiIoctlLayer, loadIoctl } from './koffi-ioctl-layer.js';
export { KernelDriver, DEFAULT_CONTROL_PATH, sysfsDevicePath } from './kernel-driver.js';
export type { KernelDriverOptions } from './kernel-driver.js';
export { createKernelDriver, kernelModuleAvailable } from './create.js';
