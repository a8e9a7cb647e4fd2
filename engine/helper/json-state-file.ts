/**
 * A JSON file in the helper's state directory, written whole each time: to a
 * temporary file, then renamed over the old one (a crash leaves the old or the new
 * file, never half of one). Writes run one after the other; requests made while a
 * write runs are folded into one next write of the newest content.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { errnoOf } from './fs-errors.js';

export class JsonStateFile {
  private writing: Promise<void> = Promise.resolve();
  /** A write is queued and has not read the content yet: later requests join it. */
  private queued: Promise<void> | null = null;

  constructor(readonly path: string) {}

  /** The parsed file, or undefined when it does not exist or is not JSON (the caller validates the shape). */
  async read(): Promise<unknown> {
    try {
      return JSON.parse(await readFile(this.path, 'utf8')) as unknown;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  /** Writes what `content()` returns when the write starts; resolves once it is on disk. */
  write(content: () => unknown): Promise<void> {
    if (this.queued) return this.queued;
    const step = this.writing.then(async () => {
      this.queued = null;
      const text = JSON.stringify(content(), null, 2) + '\n';
      const tmp = `${this.path}.tmp-${process.pid}`;
      await writeFile(tmp, text, { mode: 0o600 });
      await rename(tmp, this.path);
    });
    this.queued = step;
    this.writing = step.catch(() => undefined);
    return step;
  }

  /** Resolves when every write asked for so far has ended (shutdown). */
  async settled(): Promise<void> {
    await this.writing;
  }
}
