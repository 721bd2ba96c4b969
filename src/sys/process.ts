/** Facts about other processes. */
import { readFileSync } from 'node:fs';
import { currentBootId } from './boot.js';

/** Whether a process with this pid exists (EPERM means it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A process's start time (clock ticks since boot, /proc/PID/stat field 22), or undefined when gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/** Who is doing something: a process, told apart from a later one reusing its pid or another boot. */
export interface ProcessIdentity {
  pid: number;
  start: string;
  boot: string;
}

export function selfIdentity(): ProcessIdentity {
  return { pid: process.pid, start: processStartTime(process.pid) ?? '?', boot: currentBootId() };
}

/** Whether the process that made `id` still runs (same pid, same start time, same boot). */
export function identityAlive(id: ProcessIdentity): boolean {
  return id.boot === currentBootId() && processStartTime(id.pid) === id.start;
}
