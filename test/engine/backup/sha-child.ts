/** Child process: hashes 8 chunks on the worker thread and prints the digest (nothing else keeps it alive). */
import { Sha256Worker } from '../../../engine/backup/sha256-worker.js';

const w = new Sha256Worker();
for (let i = 0; i < 8; i++) await w.update(Buffer.alloc(65536, i));
process.stdout.write(`${await w.digest()}\n`);
