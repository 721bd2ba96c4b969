/** Where the daemon listens: `$XENNET_RUN_DIR`, else /run/xennet (root only). */
import { join, resolve } from 'node:path';

export interface RunPaths {
  dir: string;
  /** JSON requests from the CLI (and anything else that speaks it). */
  socket: string;
  /** Hook requests from the vif-xennet client: one line per request, the request file's path. */
  fifo: string;
  pid: string;
  /** Per-request files and reply FIFOs of hook clients. */
  requests: string;
}

export function runPaths(env: NodeJS.ProcessEnv = process.env): RunPaths {
  const dir = resolve(env['XENNET_RUN_DIR'] || '/run/xennet');
  return { dir, socket: join(dir, 'daemon.sock'), fifo: join(dir, 'daemon.fifo'), pid: join(dir, 'daemon.pid'), requests: join(dir, 'req') };
}

/** The variables that say which host a process acts on; hook requests must agree with the daemon's. */
export const HOST_VARIABLES = ['XENNET_STATE_DIR', 'XENNET_RULES', 'XENSTORED_PATH', 'XENSTORED_RUNDIR', 'XENNET_HOTPLUG_LOCK_DIR', 'XENNET_IPTABLES', 'XENNET_RUN_DIR'] as const;

/**
 * Node.js flags the daemon runs with (the unit's ExecStart). A young generation of 2 MiB per
 * semi-space instead of V8's 16: the daemon's garbage is many small short-lived objects, and with
 * 1000 guests this keeps its RSS near 115 MiB instead of 170 at the same throughput (bench).
 */
/**
 * The daemon's exit code when it refuses to start (another daemon serves, a setting or rule file it
 * cannot use): not worth a restart. An exception nothing caught exits DAEMON_CRASH_EXIT.
 */
export const DAEMON_REFUSED_EXIT = 1;
export const DAEMON_CRASH_EXIT = 70;

export const DAEMON_NODE_FLAGS = ['--max-semi-space-size=2', '--expose-gc'] as const;
