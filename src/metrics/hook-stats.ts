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

/** Bytes [from, to) of a regular file (no link followed, no FIFO waited on); undefined when there is none. */
function readRange(path: string, from: number): { bytes: Buffer; ino: bigint; size: number } | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile()) return undefined;
    const size = Number(st.size);
    const start = from <= size ? from : 0;
    const want = Math.min(size - start, 2 * JOURNAL_ROTATE_BYTES);
    const bytes = Buffer.allocUnsafe(want);
    let n = 0;
    for (let got = -1; got !== 0 && n < want; n += got) got = readSync(fd, bytes, n, want - n, start + n);
    return { bytes: bytes.subarray(0, n), ino: st.ino, size: start + n };
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const inoOf = (path: string): bigint | undefined => {
  try {
    return lstatSync(path, { bigint: true }).ino;
  } catch {
    return undefined;
  }
};

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

/** Follows the hook journal at `path` (and its rotated `path.1`). */
export class JournalFollower {
  private ino: bigint | undefined;
  private offset = 0;

  constructor(private readonly path: string) {}

  /** The records appended since the last call; the first call gives all the journal holds. */
  next(): HookRecord[] {
    const out: HookRecord[] = [];
    const current = inoOf(this.path);
    if (this.ino === undefined || current !== this.ino) {
      // First look, or the file was moved aside: what is left of the one followed (or all of the
      // older generation, the first time or when it was moved twice), then the new one whole.
      const older = this.ino !== undefined && inoOf(`${this.path}.1`) === this.ino ? this.offset : 0;
      const old = readRange(`${this.path}.1`, older);
      if (old && (this.ino === undefined || old.ino === this.ino || older === 0)) out.push(...records(old.bytes).records);
      this.ino = undefined;
      this.offset = 0;
    }
    const now = readRange(this.path, this.offset);
    if (!now) return out;
    if (now.size < this.offset) this.offset = 0; // cut short by someone: start again
    const got = records(now.bytes);
    out.push(...got.records);
    this.ino = now.ino;
    this.offset = now.size - now.bytes.length + got.used;
    return out;
  }
}
