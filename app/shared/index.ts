export * from './result.js';
export * from './types.js';
export * from './contract.js';
export * from './validate.js';
export * from './wire.js';
export * from './base64.js';
export * from './format.js';
export * from './cbt.js';
