/** Whether a file has changed, without reading it. */
import { lstatSync, readlinkSync, statSync, type BigIntStats } from 'node:fs';

/** Device, inode, size, modification time and change time of one stat, as one string. */
export const statIdentity = (s: BigIntStats): string => `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;

function statText(get: () => BigIntStats): string {
  try {
    return statIdentity(get());
  } catch (e) {
    return `none:${(e as NodeJS.ErrnoException).code ?? '?'}`;
  }
}

/** What `path` names (links followed), stat'ed, or undefined when nothing can be stat'ed there. */
export function statIfAny(path: string): BigIntStats | undefined {
  try {
    return statSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}

/** The identity of what `path` names (links followed), or undefined when nothing can be stat'ed there: one system call. */
export function pathIdentity(path: string): string | undefined {
  const s = statIfAny(path);
  return s === undefined ? undefined : statIdentity(s);
}

/**
 * What tells a file apart from itself earlier: device, inode, size, modification time and change
 * time (a file rewritten in place with its size and mtime put back, as `cp -p` or `rsync -t
 * --inplace` do, still has a new ctime, which nobody can set back), for the path itself and, when
 * it is a symbolic link, for where the link points and what is there (a missing file and a link
 * to a missing file differ, and so do links to two missing files).
 */
export function fileIdentity(path: string): string {
  let target = '';
  try {
    target = readlinkSync(path);
  } catch {
    // not a link (EINVAL), or nothing there
  }
  return `${statText(() => lstatSync(path, { bigint: true }))}>${target}>${statText(() => statSync(path, { bigint: true }))}`;
}
