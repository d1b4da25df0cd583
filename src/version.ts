import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The package version (compiled code lives in dist/src, the package.json two levels up). */
export const VERSION: string = (
  JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
).version;
