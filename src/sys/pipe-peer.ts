/**
 * Whether the pipe a file descriptor writes to still has a reader. A writer learns it only when it
 * writes (EPIPE), so a follower that has nothing to print would outlive its reader (the `ssh host
 * xennet drops -f` whose connection died, the `| head` that exited): this looks instead.
 */
import { fstatSync, readlinkSync } from 'node:fs';
import { processDescriptors } from './process.js';

/**
 * True when `fd` is a pipe (or a named FIFO) that no other process of this PID namespace holds
 * (its reader is gone; a reader in a parent namespace cannot be seen, hence false whenever in
 * doubt: not a pipe, /proc unreadable, or another holder found). A socket is not looked into
 * (a Node.js child's stdout, some ssh sessions): its peer is seen at the next write.
 */
export function pipeOrphaned(fd: number): boolean {
  let target: string;
  try {
    if (!fstatSync(fd).isFIFO()) return false;
    // Every holder's link reads the same: pipe:[inode], or the FIFO's path.
    target = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return false;
  }
  const descriptors = processDescriptors();
  if (descriptors === undefined) return false;
  for (const d of descriptors) {
    try {
      if (readlinkSync(d.path) === target) return false;
    } catch {
      // closed meanwhile
    }
  }
  return true;
}
