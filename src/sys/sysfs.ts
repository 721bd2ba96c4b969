/** Facts about a network link from sysfs (of the network namespace /sys was mounted in). */
import { readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';

/** The bridge a link is a port of, or undefined (not attached, or no such link). */
export function bridgeOfPort(name: string): string | undefined {
  try {
    return basename(readlinkSync(`/sys/class/net/${name}/master`));
  } catch {
    return undefined;
  }
}

/** The link's alias (IFLA_IFALIAS), or undefined. */
export function aliasOf(name: string): string | undefined {
  try {
    const a = readFileSync(`/sys/class/net/${name}/ifalias`, 'utf8').trim();
    return a === '' ? undefined : a;
  } catch {
    return undefined;
  }
}

/** The link's ifindex, or undefined (no such link). */
export function ifindexOf(name: string): number | undefined {
  if (name.includes('/') || name === '.' || name === '..' || name === '') return undefined;
  try {
    const n = Number.parseInt(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim(), 10);
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}
