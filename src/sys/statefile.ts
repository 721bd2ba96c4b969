/**
 * Durable JSON state files: written to a temporary file, fsynced, renamed over the old one, and
 * the directory fsynced, so a crash leaves either the old or the new content, never a mix.
 */
import { closeSync, constants, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { XennetError } from './errors.js';
import { pidAlive } from './process.js';

/** The state directory: `$XENNET_STATE_DIR`, else `/var/lib/xennet`. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['XENNET_STATE_DIR'];
  return fromEnv && fromEnv.length > 0 ? fromEnv : '/var/lib/xennet';
}

/**
 * Writes all of `data` or throws: one write(2) may write only part of it (the filesystem nearly
 * full) and say so only in its count; the next one then fails with ENOSPC. A state file renamed
 * into place after a short write would be cut (a firewall index cut at 45,056 bytes in the soak).
 */
export function writeAllSync(fd: number, data: string | Buffer): void {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  for (let off = 0; off < buf.length; ) {
    const n = writeSync(fd, buf, off, buf.length - off);
    if (n <= 0) throw new XennetError('state', `a write made no progress (${off} of ${buf.length} bytes written)`);
    off += n;
  }
}

/** Makes a directory's entries (a file just created, renamed or removed) last. */
export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes JSON atomically and durably: temporary file, fsync, rename, directory fsync (readers
 * see the old or the new content, and so does the next boot). `durable: false` skips the
 * fsyncs, for caches that are rebuilt when they are missing or unreadable; `compact`: no
 * indentation (a large file written often: half the bytes, and quicker to write and parse).
 */
export function writeJsonAtomic(path: string, value: unknown, options: { durable?: boolean; unlessSame?: boolean; compact?: boolean } = {}): WrittenJson | undefined {
  const text = (options.compact ? JSON.stringify(value) : JSON.stringify(value, null, 2)) + '\n';
  // A file that holds this already is left as it is (no write, no fsync).
  if (options.unlessSame && sameContent(path, text)) return undefined;
  return writeTextAtomic(path, text, options);
}

/** Writes text atomically (and durably unless `durable: false`), as writeJsonAtomic does. */
export function writeTextAtomic(path: string, text: string, options: { durable?: boolean } = {}): WrittenJson {
  const durable = options.durable ?? true;
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o644);
  let ino: bigint;
  try {
    writeAllSync(fd, text);
    if (durable) fsyncSync(fd);
    ino = fstatSync(fd, { bigint: true }).ino;
  } catch (e) {
    // What a full disk let through goes at once (it holds the space the next write needs).
    rmSync(tmp, { force: true });
    throw e;
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  if (durable) fsyncDirectory(dir);
  return { text, ino };
}

/**
 * Many files as writeJsonAtomic writes each (those that hold their content already left as they
 * are), their writes and fsyncs in parallel, so that the filesystem's journal commits them
 * together (1000 files one after another cost 1000 journal commits: half a second here), and
 * each directory fsynced once, after its renames. A crash leaves each file old or new.
 */
export async function writeJsonFilesAtomic(files: readonly { path: string; value: unknown }[]): Promise<void> {
  const dirs = new Set<string>();
  const todo = files.map((f) => ({ path: f.path, text: JSON.stringify(f.value, null, 2) + '\n' })).filter((f) => !sameContent(f.path, f.text));
  for (const f of todo) {
    const dir = dirname(f.path);
    if (!dirs.has(dir)) mkdirSync(dir, { recursive: true, mode: 0o755 });
    dirs.add(dir);
  }
  // At most 64 files open at once.
  // Every write of a group ends (settles) before the call fails: none goes on writing or renaming
  // after its caller gave up and let go of the lock.
  for (let i = 0; i < todo.length; i += 64) {
    const settled = await Promise.allSettled(
      todo.slice(i, i + 64).map(async (f) => {
        const tmp = `${f.path}.tmp-${process.pid}`;
        const handle = await open(tmp, 'w', 0o644);
        try {
          await handle.writeFile(f.text);
          await handle.sync();
        } catch (e) {
          rmSync(tmp, { force: true });
          throw e;
        } finally {
          await handle.close();
        }
        renameSync(tmp, f.path);
      }),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
  for (const dir of dirs) fsyncDirectory(dir);
}

/** What writeJsonAtomic wrote: the text, and the inode it is in (whether `path` still names that file). */
export interface WrittenJson {
  text: string;
  ino: bigint;
}

function sameContent(path: string, text: string): boolean {
  try {
    const read = readStateText(path);
    return read.kind === 'text' && read.text === text;
  } catch {
    return false;
  }
}

/** Reads a JSON file; `undefined` when it does not exist. */
export function readJson(path: string): unknown {
  // Through readJsonTolerant's guards: a FIFO in a state file's place would block a plain read for
  // good (a hook, the daemon and status all read the learned bindings and the policy cache).
  const read = readJsonTolerant(path);
  if (read.kind === 'missing') return undefined;
  if (read.kind === 'ok') return read.value;
  throw new XennetError('state', `state file ${path} is not readable as JSON: ${read.reason}`, {
    hint: 'inspect it; if the host is in its original layout, remove the file',
  });
}

export type ReadResult = { kind: 'missing' } | { kind: 'ok'; value: unknown } | { kind: 'corrupt'; reason: string };

/** The largest state file read: far more than xennet writes (its index of 1000 guests, the largest, is under 1 MB). */
export const STATE_FILE_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Reads a JSON file without throwing on content: a file that does not parse, or that is not a
 * regular file of at most STATE_FILE_MAX_BYTES (a directory, a FIFO, a device, a link), is `corrupt`.
 */
export function readJsonTolerant(path: string): ReadResult {
  const read = readStateText(path);
  if (read.kind !== 'text') return read;
  try {
    return { kind: 'ok', value: JSON.parse(read.text) as unknown };
  } catch (e) {
    return { kind: 'corrupt', reason: (e as Error).message };
  }
}

/** A state file's text, read only when it is a regular file of a sane size (see readJsonTolerant). */
function readStateText(path: string): { kind: 'missing' } | { kind: 'text'; text: string } | { kind: 'corrupt'; reason: string } {
  // What xennet writes is a regular file far smaller than the cap: anything else is not its own,
  // and opening or reading it could block (a FIFO), fail (a socket), act (a device) or take all
  // memory. Looked at before it is opened, and again once open (it may have been replaced between).
  const notOurs = (st: Stats): string | undefined => (st.isSymbolicLink() ? 'it is a symbolic link, not a file xennet wrote' : !st.isFile() ? 'it is not a regular file' : st.size > STATE_FILE_MAX_BYTES ? `it is larger than ${STATE_FILE_MAX_BYTES} bytes` : undefined);
  let fd: number;
  try {
    const why = notOurs(lstatSync(path));
    if (why !== undefined) return { kind: 'corrupt', reason: why };
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    if (code === 'ELOOP' || code === 'ENXIO' || code === 'ENODEV' || code === 'EOPNOTSUPP') return { kind: 'corrupt', reason: 'it is not a regular file' };
    throw new XennetError('state', `cannot read state file ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const why = notOurs(fstatSync(fd));
    if (why !== undefined) return { kind: 'corrupt', reason: why };
    return { kind: 'text', text: readFileSync(fd, 'utf8') };
  } catch (e) {
    throw new XennetError('state', `cannot read state file ${path}: ${(e as Error).message}`, { cause: e });
  } finally {
    closeSync(fd);
  }
}

/** Moves an unreadable state file aside (`<file>.corrupt-<time>`) for a person to look at; returns the new path. */
export function setAside(path: string): string | undefined {
  const to = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '')}`;
  try {
    renameSync(path, to);
    return to;
  } catch {
    rmSync(path, { force: true });
    return undefined;
  }
}

/** Removes temporary files (`*.tmp-<pid>`, of the file `only` alone when given) that writers killed mid-write left in `dir`. */
export function sweepTempFiles(dir: string, only?: string): string[] {
  const swept: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return swept;
  }
  for (const n of names) {
    const m = /\.tmp-(\d+)$/.exec(n);
    if (!m || (only !== undefined && n !== `${only}.tmp-${m[1]}`) || Number(m[1]) <= 1 || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    try {
      rmSync(join(dir, n), { force: true });
      swept.push(n);
    } catch {
      // a read-only directory: left as it is
    }
  }
  return swept;
}

export function removeFile(path: string): void {
  rmSync(path, { force: true });
  try {
    fsyncDirectory(dirname(path));
  } catch {
    /* directory gone: nothing to sync */
  }
}
