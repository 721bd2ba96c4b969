/**
 * A hook call handed to the daemon by the vif-xennet client: a file of NUL-terminated fields,
 *
 *   xennet-hook 1 \0 <client start, seconds since the epoch> \0 <argc> \0 <argv...> \0 <NAME=VALUE \0>...
 *
 * written by the client (bash builtins only) into the daemon's request directory, announced on
 * the request FIFO. Everything in it is from outside: sizes, counts and names are checked, and
 * only the variables a vif-script call carries (and the ones that say which host) are kept.
 */
import { HOST_VARIABLES } from './paths.js';

export const MAX_REQUEST_BYTES = 64 * 1024;

/** Variables of a vif-script call (libxl, xend) and xennet's per-call switches. */
const CALL_VARIABLES = new Set(['vif', 'XENBUS_PATH', 'XENBUS_TYPE', 'XENBUS_BASE_PATH', 'INTERFACE', 'script', 'netdev', 'bridge', 'ip', 'XENNET_FIREWALL', 'XENNET_TIMING', 'XENNET_SYSLOG', ...HOST_VARIABLES]);

export interface HookRequest {
  /** When the client started (ms since the epoch): the hook's budget counts from there. */
  startedAt: number;
  argv: string[];
  env: Record<string, string>;
}

export function parseHookRequest(data: Buffer): HookRequest {
  if (data.length > MAX_REQUEST_BYTES) throw new Error(`request of ${data.length} bytes (at most ${MAX_REQUEST_BYTES})`);
  const fields = data.toString('utf8').split('\0');
  if (fields[fields.length - 1] === '') fields.pop();
  if (fields[0] !== 'xennet-hook 1') throw new Error('not a xennet hook request (version 1)');
  const started = Number(fields[1]);
  if (!/^\d{9,11}(\.\d{1,9})?$/.test(fields[1] ?? '') || !Number.isFinite(started)) throw new Error('bad start time');
  const argc = Number(fields[2]);
  if (!/^\d{1,2}$/.test(fields[2] ?? '') || argc > 32) throw new Error('bad argument count');
  const argv = fields.slice(3, 3 + argc);
  if (argv.length !== argc) throw new Error('truncated arguments');
  const env: Record<string, string> = {};
  for (const f of fields.slice(3 + argc)) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new Error('bad environment entry');
    const name = f.slice(0, eq);
    if (CALL_VARIABLES.has(name)) env[name] = f.slice(eq + 1);
  }
  return { startedAt: Math.round(started * 1000), argv, env };
}
