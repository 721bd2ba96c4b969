/**
 * Processes of the system suite: every hook, xenstored and lock holder it starts is tracked, has
 * a kill deadline (like libxl, which SIGKILLs a hotplug script after 40 s), and is killed with
 * its descendants in `after` hooks and when the suite exits, stopped ones first continued.
 * Starts go through src/sys/exec.ts (argument arrays, never a shell string).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { start } from '../../../src/sys/exec.js';

export interface Finished {
  /** Exit code, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from start to exit. */
  ms: number;
  /** The suite killed it at its deadline. */
  killedAtDeadline: boolean;
}

export interface Tracked {
  pid: number;
  what: string;
  done: Promise<Finished>;
  /** Whether it is still running (its pid is still its own). */
  alive(): boolean;
  /** Kills it with its descendants (nothing once it has exited); resolves when it is gone. */
  kill(): Promise<void>;
  /** Signals the process itself while it runs (e.g. SIGSTOP, SIGCONT). */
  signal(sig: NodeJS.Signals): void;
  /** Its stdout so far. */
  stdoutText(): string;
}

const live = new Map<number, Tracked>();

/** The pids of every descendant of `pid` (children first found by scanning /proc). */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(entry), Number(fields[1]));
    } catch {
      /* gone meanwhile */
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const [child, pp] of parent) {
      if (pp === p && !out.includes(child)) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** SIGCONT (a stopped process cannot die otherwise) and SIGKILL to `pid` and all its descendants. */
export function killTree(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return; // never -1 (everything), 0 (our group), init or ourselves
  const all = [pid, ...descendants(pid)];
  for (const p of all) signal(p, 'SIGCONT');
  for (const p of all) signal(p, 'SIGKILL');
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Killed (with its descendants) after this long; default 40 s, libxl's hotplug timeout. */
  killAfterMs?: number;
  input?: string;
}

/** Starts `file args` and tracks it until it exits. */
export function spawnTracked(file: string, args: readonly string[], options: SpawnOptions = {}): Tracked {
  const t0 = performance.now();
  const child = start(file, args, options.env ? { env: options.env } : {});
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(options.input ?? '');
  let killedAtDeadline = false;
  let running = child.pid !== undefined;
  const what = [file, ...args].join(' ');
  const done = new Promise<Finished>((resolve) => {
    const timer = setTimeout(() => {
      killedAtDeadline = true;
      if (running && child.pid !== undefined) killTree(child.pid);
    }, options.killAfterMs ?? 40_000);
    const finish = (code: number | null, sig: NodeJS.Signals | null, extra = ''): void => {
      clearTimeout(timer);
      running = false;
      if (child.pid !== undefined) live.delete(child.pid);
      resolve({ code, signal: sig, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') + extra, ms: performance.now() - t0, killedAtDeadline });
    };
    child.on('error', (e) => finish(null, null, `\n[suite] could not start ${file}: ${e.message}`));
    child.on('close', (code, sig) => finish(code, sig));
  });
  const pid = child.pid ?? -1;
  const tracked: Tracked = {
    pid,
    what,
    done,
    alive: () => running,
    kill: async () => {
      if (running) killTree(pid);
      await done;
    },
    signal: (sig) => {
      if (running) signal(pid, sig);
    },
    stdoutText: () => Buffer.concat(out).toString('utf8'),
  };
  if (child.pid === undefined) return tracked;
  live.set(child.pid, tracked);
  return tracked;
}

/** Kills every tracked process that is still running (and its descendants) and waits for them. */
export async function killAll(): Promise<string[]> {
  const left = [...live.values()];
  await Promise.all(left.map((t) => t.kill()));
  return left.map((t) => t.what);
}

/** Whether any tracked process is still running. */
export function running(): string[] {
  return [...live.values()].map((t) => t.what);
}

/** Describes how a process ended, for assertion messages. */
export function ended(f: Finished): string {
  const how = f.killedAtDeadline ? `killed at its deadline after ${(f.ms / 1000).toFixed(1)} s` : f.signal ? `ended by ${f.signal} after ${(f.ms / 1000).toFixed(1)} s` : `exit ${f.code} after ${(f.ms / 1000).toFixed(1)} s`;
  // The first line that names an error (a crash prints a stack after it), else the last lines.
  const tail = (s: string): string => {
    const lines = s.trim().split('\n').filter((l) => l.trim() !== '');
    const key = lines.find((l) => /^\s*\w*Error\b|\berror: /.test(l)) ?? lines.find((l) => /error/i.test(l));
    return key !== undefined ? key.trim().slice(0, 300) : lines.slice(-4).join(' | ');
  };
  return `${how}; stderr: ${tail(f.stderr) || '(empty)'}${f.stdout.trim() ? `; stdout: ${tail(f.stdout)}` : ''}`;
}
