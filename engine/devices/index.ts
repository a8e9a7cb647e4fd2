export * from './discovery.js';
export * from './image-registry.js';
export * from './size.js';
