/** Linux device numbers: moved to engine/abi (the kernel driver needs them too). */
export { splitDevT } from '../abi/dev-t.js';
