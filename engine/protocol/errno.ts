/** The errno names of the helper protocol's errors: those of the driver ABI. */
export { ERRNO, errnoName, isErrnoName } from '../abi/errno.js';
export type { ErrnoName } from '../abi/errno.js';
