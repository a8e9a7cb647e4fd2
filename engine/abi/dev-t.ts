/** Linux device numbers (dev_t as fstat returns it, glibc encoding). */

/** Major and minor of a dev_t. */
export function splitDevT(rdev: number): { major: number; minor: number } {
  const big = BigInt(rdev);
  const major = Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn));
  const minor = Number((big & 0xffn) | ((big >> 12n) & ~0xffn));
  return { major, minor };
}
