/** Facts about other processes. */
import { readFileSync } from 'node:fs';
import { currentBootId } from './boot.js';

/**
 * The pid a pid file names: its text is a decimal pid above 1 and nothing else (a trailing newline
 * aside). Anything else is undefined: above all an empty file (a writer between creating and
 * writing it), whose `Number('')` is 0, and `kill(0, sig)` signals the caller's whole process group.
 */
export function pidInFile(text: string): number | undefined {
  const m = /^\s*([1-9][0-9]{0,9})\s*$/.exec(text);
  if (!m) return undefined;
  const pid = Number(m[1]);
  return pid > 1 && pid <= 0x3fffffff ? pid : undefined;
}

/** The pid in the pid file at `path` (see `pidInFile`), or undefined when it is missing or holds no pid. */
export function readPidFile(path: string): number | undefined {
  try {
    return pidInFile(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Whether a process with this pid exists (EPERM means it exists but is not ours); never true of 0 or a negative pid, which name process groups. */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
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
