/** The helper's settings, persisted as JSON in its state directory (atomic rename). */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_SETTINGS, SettingsSchema } from '../protocol/schemas.js';
import type { Settings } from '../protocol/schemas.js';
import { errnoOf } from './fs-errors.js';

export class SettingsStore {
  private current: Settings = { ...DEFAULT_SETTINGS };
  private readonly file: string;

  constructor(stateDir: string) {
    this.file = join(stateDir, 'settings.json');
  }

  async load(): Promise<Settings> {
    try {
      const parsed = SettingsSchema.partial().safeParse(JSON.parse(await readFile(this.file, 'utf8')));
      if (parsed.success) this.current = { ...DEFAULT_SETTINGS, ...parsed.data };
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
    }
    return this.get();
  }

  get(): Settings {
    return { ...this.current };
  }

  async update(patch: Partial<Settings>): Promise<Settings> {
    const next = SettingsSchema.parse({ ...this.current, ...patch });
    const tmp = `${this.file}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(next, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, this.file);
    this.current = next;
    return this.get();
  }
}
