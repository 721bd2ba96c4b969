/**
 * The hook calls of the last while, whoever ran them (the daemon or the hook's own process), for
 * `xennet status GUEST`: one JSON line per call appended to `<state dir>/hooks.log`, which is
 * moved to `hooks.log.1` once it passes 1 MiB (so both together hold the last 5,000 calls or
 * more, and never more than 2 MiB). An append of one short line with O_APPEND is not interleaved
 * with another process's. (Two writers that pass 1 MiB at the same moment may both move it aside:
 * then the older generation is lost; the window is microseconds, the loss a record of calls.) Recording is best effort: a full disk or a read-only state directory
 * loses the record, never the call.
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { readRegularFile } from '../sys/regular-file.js';
import { stateDir } from '../sys/statefile.js';

export const JOURNAL_FILE = 'hooks.log';
export const JOURNAL_ROTATE_BYTES = 1024 * 1024;
const MESSAGE_MAX = 400;

export interface HookRecord {
  /** When the call ended (ISO time). */
  at: string;
  command: string;
  /** The interface the call was for (the device, or the name it was renamed to). */
  vif: string;
  domid: number;
  devid: number;
  /** Milliseconds from the hook's start to its end. */
  ms: number;
  via: 'daemon' | 'in-process';
  ok: boolean;
  /** What it did, or why it failed. */
  message: string;
}

export const journalPath = (env: NodeJS.ProcessEnv): string => join(stateDir(env), JOURNAL_FILE);

/** Appends one record; never throws. */
export function recordHookCall(env: NodeJS.ProcessEnv, record: HookRecord): void {
  const path = journalPath(env);
  const line = `${JSON.stringify({ ...record, message: record.message.slice(0, MESSAGE_MAX) })}\n`;
  let fd: number | undefined;
  try {
    mkdirSync(stateDir(env), { recursive: true, mode: 0o755 });
    // Never through a link, and never blocked on a FIFO put there (O_NONBLOCK: no reader is ENXIO).
    fd = openSync(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o644);
    const st0 = fstatSync(fd);
    if (!st0.isFile()) return;
    // One write of one line (O_APPEND: never interleaved with another's). A line an earlier
    // write left cut (the disk full) is ended first, so that it spoils only itself; nothing is
    // ever taken back (another process's line may follow it).
    const end = Buffer.alloc(1);
    const cut = st0.size > 0 && readSync(fd, end, 0, 1, st0.size - 1) === 1 && end[0] !== 0x0a;
    writeSync(fd, cut ? `\n${line}` : line);
    const st = fstatSync(fd);
    // Moved aside once, by whoever passed the size first (not a new file another process began).
    if (st.size > JOURNAL_ROTATE_BYTES && statSync(path).ino === st.ino) renameSync(path, `${path}.1`);
  } catch {
    /* best effort: the call's outcome is in xenstore and the log */
  } finally {
    try {
      if (fd !== undefined) closeSync(fd);
    } catch {
      /* never throws: the call's outcome does not depend on its record */
    }
  }
}

/** A line of the journal, if it is a record (anything else in the file is skipped). */
export function parseHookRecord(line: string): HookRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  const str = (k: string): string | undefined => (typeof r[k] === 'string' ? (r[k] as string) : undefined);
  const num = (k: string): number | undefined => (typeof r[k] === 'number' && Number.isFinite(r[k]) ? (r[k] as number) : undefined);
  const [at, command, vif, message] = [str('at'), str('command'), str('vif'), str('message')];
  const [domid, devid, ms] = [num('domid'), num('devid'), num('ms')];
  const via = r['via'] === 'daemon' || r['via'] === 'in-process' ? r['via'] : undefined;
  if (at === undefined || command === undefined || vif === undefined || message === undefined || domid === undefined || devid === undefined || ms === undefined || via === undefined || typeof r['ok'] !== 'boolean') return undefined;
  return { at, command, vif, domid, devid, ms, via, ok: r['ok'], message };
}

/** The last `max` records that `wanted` picks, oldest first. */
export function readHookCalls(env: NodeJS.ProcessEnv, wanted: (r: HookRecord) => boolean, max = 10): HookRecord[] {
  const path = journalPath(env);
  const out: HookRecord[] = [];
  for (const file of [`${path}.1`, path]) {
    const text = readJournalFile(file);
    if (text === undefined) continue;
    for (const line of text.split('\n')) {
      const r = line ? parseHookRecord(line) : undefined;
      if (r && wanted(r)) out.push(r);
    }
  }
  return out.slice(-max);
}

/** A journal file's text: a regular file of at most twice the rotation size, read without following a link or waiting on a FIFO. */
function readJournalFile(file: string): string | undefined {
  return readRegularFile(file, 2 * JOURNAL_ROTATE_BYTES)?.bytes?.toString('utf8');
}
