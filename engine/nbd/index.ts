export { NbdServer, DEFAULT_LIMITS } from './server.js';
export type { NbdServerOptions, NbdServerStats, ServerLimits } from './server.js';
export type { ConnectionLimits } from './connection.js';
export type { ExportEntry, ExportSource } from './export-source.js';
export { staticExports } from './export-source.js';
export { unixUri, tcpUri } from './uri.js';
export { nbdErrorFor } from './errors.js';
export { engineExports } from './engine-exports.js';
