/** Reading and writing /proc/sys values (per network namespace for net.*). */
import { readFileSync, writeFileSync } from 'node:fs';

const pathOf = (key: string): string => `/proc/sys/${key.replace(/\./g, '/')}`;

export function readSysctl(key: string): string | undefined {
  try {
    return readFileSync(pathOf(key), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Writes a value; returns false when the key does not exist (module not loaded). */
export function writeSysctl(key: string, value: string): boolean {
  try {
    writeFileSync(pathOf(key), value);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}
