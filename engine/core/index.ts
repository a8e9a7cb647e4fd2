export { EmbeddedEngine, createEmbeddedEngine, ENGINE_VERSION, IMAGE_NAME_PREFIX, FILE_DEVICE_MAJOR } from './engine.js';
export type { EmbeddedEngineOptions } from './engine.js';
export type { EmbeddedEngineApi, EngineDeviceInfo, EngineImageInfo } from './embedded-api.js';
export type { BlockDevice } from './block-device.js';
export { FileBlockDevice, LOGICAL_BLOCK_SIZE, PHYSICAL_BLOCK_SIZE } from './file-block-device.js';
export { DEFAULT_PARAMS, resolveParams } from './params.js';
export type { ModuleParams } from './params.js';
export { calculateTrackingBlock, CbtMap } from './cbt-map.js';
export { calculateChunkSize } from './chunk.js';
