/**
 * Hook calls as metrics: how long each took (a histogram) and how many failed, by operation and
 * by path (through the daemon or in the hook's own process), from the hook journal
 * (`<state dir>/hooks.log`, where every call is recorded whoever ran it). A follower reads what
 * was appended since it last looked, across the journal's rotation, so a resident reader's
 * figures only grow.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { JOURNAL_ROTATE_BYTES, parseHookRecord, type HookRecord } from '../hooks/hook-journal.js';

/** The operations a label may name (anything else a toolstack sends counts as `other`). */
const OPERATIONS = new Set(['online', 'offline', 'add', 'remove']);
export const operationOf = (command: string): string => (OPERATIONS.has(command) ? command : 'other');

/** Upper bounds of the duration buckets, seconds (libxl waits 40 s for a hook at most). */
export const HOOK_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 40] as const;

export interface HookSeries {
  operation: string;
  path: 'daemon' | 'in-process';
  /** Calls at or below each bound of HOOK_BUCKETS (cumulative, as Prometheus wants). */
  buckets: number[];
  count: number;
  sumSeconds: number;
  failures: number;
}

export class HookStats {
  private readonly series = new Map<string, HookSeries>();

  add(r: HookRecord): void {
    const operation = operationOf(r.command);
    const key = `${operation} ${r.via}`;
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = { operation, path: r.via, buckets: HOOK_BUCKETS.map(() => 0), count: 0, sumSeconds: 0, failures: 0 }));
    const seconds = Math.max(0, r.ms) / 1000;
    HOOK_BUCKETS.forEach((b, i) => {
      if (seconds <= b) s.buckets[i]!++;
    });
    s.count++;
    s.sumSeconds += seconds;
    if (!r.ok) s.failures++;
  }

  /** Every series, sorted by operation and path. */
  all(): HookSeries[] {
    return [...this.series.values()].sort((a, b) => a.operation.localeCompare(b.operation) || a.path.localeCompare(b.path));
  }
}

/**
 * A file's identity: its inode and birth time (ext4 gives a file made after a rotation the inode
 * of the one just deleted; its birth time tells them apart), or undefined when there is none.
 */
function identityOf(path: string): string | undefined {
  try {
    const st = lstatSync(path, { bigint: true });
    return st.isFile() ? `${st.ino}:${st.birthtimeNs}` : undefined;
  } catch {
    return undefined;
  }
}

/** Bytes from `from` to the end of a regular file (no link followed, no FIFO waited on; at most 2 MiB), or undefined when there is none. */
function readFrom(path: string, from: number): { bytes: Buffer; identity: string; start: number } | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile()) return undefined;
    const size = Number(st.size);
    // Cut short since (someone truncated it): from its start.
    const start = from <= size ? from : 0;
    const want = Math.min(size - start, 2 * JOURNAL_ROTATE_BYTES);
    const bytes = Buffer.allocUnsafe(want);
    let n = 0;
    for (let got = -1; got !== 0 && n < want; n += got) got = readSync(fd, bytes, n, want - n, start + n);
    return { bytes: bytes.subarray(0, n), identity: `${st.ino}:${st.birthtimeNs}`, start };
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The whole lines of `bytes`, as records, and how many bytes they took. */
function records(bytes: Buffer): { records: HookRecord[]; used: number } {
  const end = bytes.lastIndexOf(0x0a);
  if (end < 0) return { records: [], used: 0 };
  const out: HookRecord[] = [];
  for (const line of bytes.toString('utf8', 0, end).split('\n')) {
    const r = line ? parseHookRecord(line) : undefined;
    if (r) out.push(r);
  }
  return { records: out, used: end + 1 };
}

/**
 * Follows the hook journal at `path` and its older generation `path.1` (recordHookCall moves the
 * journal there past 1 MiB; the next call starts a new one). It follows one file at a time, known
 * by its identity, up to the end of its last whole line; when the journal is not that file any
 * more, what is left of it is read from `path.1` (all of `path.1` when it was moved aside twice
 * meanwhile: the generation between is lost), then the journal from its start.
 */
export class JournalFollower {
  private identity: string | undefined;
  private offset = 0;
  private started = false;

  constructor(private readonly path: string) {}

  /** The records appended since the last call; the first call gives all the journal holds. */
  next(): HookRecord[] {
    const out: HookRecord[] = [];
    const older = `${this.path}.1`;
    if (!this.started) {
      // Everything: the older generation, then the journal (or the older one alone, followed).
      this.started = true;
      const old = readFrom(older, 0);
      if (old) {
        const got = records(old.bytes);
        out.push(...got.records);
        this.identity = old.identity;
        this.offset = got.used;
      }
    }
    const current = identityOf(this.path);
    if (this.identity !== undefined && current !== this.identity) {
      // The file followed is not the journal: the rest of it, if it is the older generation now.
      const olderIdentity = identityOf(older);
      if (olderIdentity !== undefined && olderIdentity !== current) {
        const rest = readFrom(older, olderIdentity === this.identity ? this.offset : 0);
        if (rest) {
          const got = records(rest.bytes);
          out.push(...got.records);
          this.identity = rest.identity;
          this.offset = rest.start + got.used;
        }
      }
      if (current === undefined) return out; // no journal yet: the older one stays followed
      this.identity = current;
      this.offset = 0;
    }
    const now = readFrom(this.path, this.offset);
    if (!now) return out;
    const got = records(now.bytes);
    out.push(...got.records);
    this.identity = now.identity;
    this.offset = now.start + got.used;
    return out;
  }

  /** Follows from the end of what the journal holds now (what a reader that counts from its own start wants). */
  skipToEnd(): void {
    this.next();
  }
}
