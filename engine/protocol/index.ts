export * from './limits.js';
export * from './cbt-encoding.js';
export * from './schemas.js';
export * from './methods.js';
export * from './messages.js';
export * from './client.js';
export * from './errno.js';
export * from './backup-schemas.js';
