/** Facts about other processes. */
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { currentBootId } from './boot.js';
import { statIdentity } from './file-identity.js';
import { readRegularFile } from './regular-file.js';

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

/**
 * The pid in the pid file at `path` (see `pidInFile`), or undefined when it is missing or holds no
 * pid. Only a regular file, not through a symbolic link, and only its first bytes: a FIFO would
 * block the reader, and a link to /dev/zero would fill its memory.
 */
export function readPidFile(path: string): number | undefined {
  return pidFileAt(path)?.pid;
}

/**
 * A pid file as one read through one descriptor: the pid it names (undefined: none) and the
 * identity of the file read (device, inode, size, times), or undefined when there is no regular
 * file there (see readPidFile).
 */
export function pidFileAt(path: string): { pid: number | undefined; identity: string } | undefined {
  const file = readRegularFile(path, PID_FILE_MAX);
  if (file === undefined) return undefined;
  return { pid: file.bytes === undefined ? undefined : pidInFile(file.bytes.toString('utf8')), identity: statIdentity(file.stat) };
}

/** No pid file of xennet's is longer: a pid, a newline. */
const PID_FILE_MAX = 32;

/** A process that runs (not a zombie waiting for its parent). */
export function pidRunning(pid: number): boolean {
  if (!pidAlive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const realOr = (p: string): string => {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
};

/** A process's command line, as one printable line (at most 200 characters). */
export function commandOf(pid: number): string {
  try {
    const text = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '').join(' ');
    return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
  } catch {
    return '?';
  }
}

/** Whether `pid` runs with `subcommand` among its arguments (whatever the program). */
export function runsSubcommand(pid: number, subcommand: string): boolean {
  if (!pidRunning(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(subcommand);
  } catch {
    return false;
  }
}

/**
 * Whether `pid` runs this very program (the script this process was started from, as Node runs
 * it) with `subcommand`: a pid file naming another process (its pid reused, or a decoy started as
 * `node main.js daemon`) is not taken for xennet's.
 */
export function runsThisProgram(pid: number, subcommand: string, script = process.argv[1]): boolean {
  if (!script || !pidRunning(pid)) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    // node [node options] [--] script subcommand ...
    let i = 1;
    while (i < argv.length && argv[i]!.startsWith('-')) {
      i++;
      if (argv[i - 1] === '--') break;
    }
    const theirs = argv[i];
    if (theirs === undefined || argv[i + 1] !== subcommand) return false;
    return realOr(resolve(readlinkSync(`/proc/${pid}/cwd`), theirs)) === realOr(resolve(script));
  } catch {
    return false;
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

/**
 * Whether the process `pid` that started at `start` (processStartTime) has ended: its /proc entry
 * is gone, names another process (another start time), or a zombie (killed, not yet reaped). One
 * that cannot be read for another reason (no descriptor left) is taken to live.
 */
export function processEnded(pid: number, start: string): boolean {
  let rest: string[];
  try {
    rest = statFields(pid);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ESRCH';
  }
  return rest[0] === 'Z' || rest[0] === 'X' || rest[19] !== start;
}

/** The fields of /proc/<pid>/stat from the third (the state) on; throws when it cannot be read. */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces: split after it.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** A process's start time (clock ticks since boot, /proc/PID/stat field 22), or undefined when gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    return statFields(pid)[19];
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

/**
 * The open descriptors of every other process of this PID namespace (and this one's, with
 * `includeSelf`), as their /proc paths (`/proc/<pid>/fd/<n>`, to read the link of or stat),
 * listed lazily: a process or descriptor gone meanwhile is passed over. Undefined when /proc
 * cannot be listed.
 */
export function processDescriptors(includeSelf = false): Iterable<{ pid: number; fd: string; path: string }> | undefined {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p) && (includeSelf || Number(p) !== process.pid));
  } catch {
    return undefined;
  }
  return (function* () {
    for (const pid of pids) {
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue; // gone meanwhile
      }
      for (const fd of fds) yield { pid: Number(pid), fd, path: `/proc/${pid}/fd/${fd}` };
    }
  })();
}
