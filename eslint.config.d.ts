// Types of eslint.config.js for the tests that read its layering table (test/lint/layering.test.ts).
import type { Linter } from 'eslint';

export interface Layer {
  folder: string;
  folders: string[];
  packages: string[];
  builtins: boolean;
}

export declare const LAYERS: Layer[];
declare const config: Linter.Config[];
export default config;
