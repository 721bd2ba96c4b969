/**
 * Network namespaces for integration tests. Names are `xnt-<pid>-<role>-<random>`: the pid of the
 * test process that made them, so `sweepLeftovers` removes those of dead runs and nothing else.
 * Every namespace is deleted by `destroy` (call it in `after`/`afterEach`), in every outcome.
 */
import { randomBytes } from 'node:crypto';
import { run, type ExecResult } from '../../../src/sys/exec.js';
import { sweepNetns } from '../../../src/sim/netns.js';
import { readPidFile } from '../../../src/sys/process.js';

export class Netns {
  constructor(readonly name: string) {}

  /** Runs a program inside the namespace. */
  exec(file: string, args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.name, file, ...args], options);
  }

  /** Runs a program inside the namespace and fails the test when it exits non-zero. */
  async sh(file: string, args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
    const r = await this.exec(file, args, options);
    if (r.code !== 0) throw new Error(`[${this.name}] ${file} ${args.join(' ')} exited ${r.code}: ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  /** `ip -n NS ...`, failing on error. */
  async ip(...args: string[]): Promise<string> {
    const r = await run('ip', ['-n', this.name, ...args]);
    if (r.code !== 0) throw new Error(`ip -n ${this.name} ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** `ip -j -n NS ...` parsed. */
  async ipJson<T = unknown>(...args: string[]): Promise<T> {
    const out = await this.ip('-j', ...args);
    return (out.trim() === '' ? [] : JSON.parse(out)) as T;
  }

  async ping(target: string, count = 1, waitSeconds = 2): Promise<boolean> {
    const r = await this.exec('ping', ['-n', '-q', '-c', String(count), '-W', String(waitSeconds), target], { timeoutMs: (waitSeconds + 2) * count * 1000 });
    return r.code === 0;
  }
}

const created = new Set<string>();

export async function createNetns(role: string): Promise<Netns> {
  const name = `xnt-${process.pid}-${role}-${randomBytes(3).toString('hex')}`;
  const r = await run('ip', ['netns', 'add', name]);
  if (r.code !== 0) throw new Error(`ip netns add ${name}: ${r.stderr}`);
  created.add(name);
  const ns = new Netns(name);
  await ns.ip('link', 'set', 'lo', 'up');
  return ns;
}

export async function destroy(...namespaces: (Netns | undefined)[]): Promise<void> {
  for (const ns of namespaces) {
    if (!ns) continue;
    await run('ip', ['netns', 'delete', ns.name]);
    created.delete(ns.name);
  }
}


/** Deletes `xnt-` namespaces whose creating process is gone. */
export function sweepLeftovers(): Promise<string[]> {
  return sweepNetns('xnt');
}

/** Namespaces this process made and has not destroyed (a test that leaks one is a bug). */
export function stillCreated(): string[] {
  return [...created];
}

/**
 * SIGKILLs the processes pid files name (a dhclient a test started, which daemonized: the parent
 * exits before the child writes its pid, so a file may be missing or empty for a moment; each is
 * waited for, all within `waitMs`). A file that stays missing, empty or without a pid is skipped: never
 * `kill(0)`, which would kill the test runner's whole process group (CI's shell with it).
 */
export async function killByPidFiles(paths: readonly string[], waitMs = 2000): Promise<void> {
  const until = Date.now() + waitMs;
  for (const path of paths) {
    let pid = readPidFile(path);
    while (pid === undefined && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
      pid = readPidFile(path);
    }
    if (pid === undefined || pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* not running */
    }
  }
}
