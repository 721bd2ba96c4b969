/**
 * Durable JSON state files: written to a temporary file, fsynced, renamed over the old one, and
 * the directory fsynced, so a crash leaves either the old or the new content, never a mix.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { XennetError } from './errors.js';

/** The state directory: `$XENNET_STATE_DIR`, else `/var/lib/xennet`. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['XENNET_STATE_DIR'];
  return fromEnv && fromEnv.length > 0 ? fromEnv : '/var/lib/xennet';
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes JSON atomically (temporary file + rename: readers see the old or the new content).
 * `durable: false` skips the fsyncs, for state that is only meaningful while the kernel state it
 * describes exists (it does not survive a reboot either, and a killed process loses nothing).
 */
export function writeJsonAtomic(path: string, value: unknown, options: { durable?: boolean } = {}): void {
  const durable = options.durable ?? true;
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, JSON.stringify(value, null, 2) + '\n');
    if (durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  if (durable) fsyncDir(dir);
}

/** Reads a JSON file; `undefined` when it does not exist. */
export function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new XennetError('state', `cannot read state file ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new XennetError('state', `state file ${path} is not valid JSON: ${(e as Error).message}`, {
      hint: 'inspect it; if the host is in its original layout, remove the file',
    });
  }
}

export function removeFile(path: string): void {
  rmSync(path, { force: true });
  try {
    fsyncDir(dirname(path));
  } catch {
    /* directory gone: nothing to sync */
  }
}
