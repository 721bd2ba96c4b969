/**
 * The only place in xennet that starts processes. Always an executable plus an argument array
 * (never a shell string), with a bounded run time and captured output.
 */
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { XennetError } from './errors.js';

export interface ExecOptions {
  /** Written to the child's standard input, then closed. */
  input?: string;
  /** Milliseconds before the child is killed (default 30 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Open descriptors of this process handed to the child as its fds 3, 4, ... */
  passFds?: number[];
  /** Kills the child when aborted. */
  signal?: AbortSignal;
}

export interface ExecResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Killed because it ran past `timeoutMs`. */
  timedOut?: boolean;
}

function assertArgv(file: string, args: readonly string[]): void {
  if (file.length === 0) throw new XennetError('internal', 'exec: empty executable name');
  for (const a of [file, ...args]) {
    if (typeof a !== 'string' || a.includes('\0')) {
      throw new XennetError('internal', `exec: argument ${JSON.stringify(a)} of ${file} is not a plain string`);
    }
  }
}

/** Runs a program to completion; resolves with its exit status and output (never rejects on a non-zero exit). */
export function run(file: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  assertArgv(file, args);
  return new Promise((resolve, reject) => {
    const timeoutMs = Math.max(1, Math.ceil(options.timeoutMs ?? 30_000));
    const child: ChildProcessWithoutNullStreams = spawn(file, args, {
      stdio: ['pipe', 'pipe', 'pipe', ...(options.passFds ?? [])],
      env: options.env ?? process.env,
      cwd: options.cwd,
      ...(options.signal ? { signal: options.signal, killSignal: 'SIGKILL' as const } : {}),
    }) as ChildProcessWithoutNullStreams;
    // Our own timer (spawn's `timeout` stays armed after a failed spawn and holds the process up).
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = e.code === 'ENOENT' ? 'it is not installed' : e.code === 'EACCES' ? 'it is not executable' : e.message;
      reject(new XennetError('exec', `could not run ${file}: ${why}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      resolve({ code: code ?? -1, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: timedOut ? `${stderr}${stderr ? '\n' : ''}did not finish within ${timeoutMs / 1000} s and was killed` : stderr, timedOut });
    });
    child.stdin.on('error', () => undefined); // a child that exits early closes its stdin
    child.stdin.end(options.input ?? '');
  });
}

/** Like {@link run} but rejects with the program's stderr when it exits non-zero. */
export async function runChecked(file: string, args: readonly string[], options: ExecOptions = {}): Promise<string> {
  const r = await run(file, args, options);
  if (r.code !== 0) {
    const why = (r.stderr || r.stdout).trim() || (r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`);
    throw new XennetError('exec', `${file} ${args.join(' ')} failed: ${why}`);
  }
  return r.stdout;
}

/** Starts a long-running program; the caller owns the returned process and must end it. */
export function start(file: string, args: readonly string[], options: Omit<ExecOptions, 'input' | 'timeoutMs'> = {}): ChildProcess {
  assertArgv(file, args);
  return spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env, cwd: options.cwd });
}

/** Starts a program and lets it run on its own (no output captured, not waited for); returns its pid. */
export function fireAndForget(file: string, args: readonly string[]): number | undefined {
  assertArgv(file, args);
  try {
    const child = spawn(file, args, { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
    return child.pid;
  } catch {
    return undefined;
  }
}

/** Runs a program with this process's stdin, stdout and stderr (a test runner's child); its exit code. */
export function spawnInherited(file: string, args: readonly string[], options: Pick<ExecOptions, 'env' | 'cwd'> = {}): Promise<number> {
  assertArgv(file, args);
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: 'inherit', env: options.env ?? process.env, cwd: options.cwd });
    child.on('error', () => resolve(127));
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** A system program: where it is installed (the first of the usual sbin/bin paths), if it is. */
export function findProgram(name: string): string | undefined {
  return [`/usr/sbin/${name}`, `/sbin/${name}`, `/usr/bin/${name}`, `/bin/${name}`].find(isExecutable);
}

/** Whether `path` is a file this process may run (a file there that it may not, /dev/null bound over a program, is no program). */
export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** A system program's path, or an error naming the Debian package that has it and why it is needed. */
export function needProgram(name: string, debianPackage: string, why: string): string {
  const p = findProgram(name);
  if (!p) throw new XennetError('exec', `${name} is not installed`, { hint: `install the Debian package ${debianPackage} (${why})` });
  return p;
}
