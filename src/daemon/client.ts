/**
 * Talking to a running daemon over its socket (the CLI's status, plan, apply). No daemon, or one
 * that does not answer, is not an error here: the caller then does the work itself.
 */
import { connect } from 'node:net';
import { XennetError } from '../sys/errors.js';
import { runPaths } from './paths.js';

/** How long `status` waits for the daemon's answer before it reads the host itself. */
export const STATUS_DAEMON_WAIT_MS = 10_000;

export type DaemonAnswer = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string; hint?: string } };

/** The daemon's answer, or undefined when no daemon listens. */
export function askDaemon(env: NodeJS.ProcessEnv, request: Record<string, unknown>, timeoutMs = 300_000): Promise<DaemonAnswer | undefined> {
  const path = runPaths(env).socket;
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    // Decoded once, whole: a character of several bytes (a guest's name) may straddle two chunks.
    const chunks: Buffer[] = [];
    let connected = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new XennetError('timeout', `the xennet daemon (${path}) did not answer within ${Math.round(timeoutMs / 1000)} s`, { hint: 'systemctl status xennet' }));
    }, timeoutMs);
    sock.on('connect', () => {
      connected = true;
      sock.write(`${JSON.stringify({ v: 1, ...request })}\n`);
    });
    sock.on('data', (b: Buffer) => {
      chunks.push(b);
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!connected && (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'ENOTDIR')) resolve(undefined);
      else reject(new XennetError('exec', `talking to the xennet daemon (${path}): ${e.message}`));
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (!connected) return;
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8').trim()) as DaemonAnswer);
      } catch {
        reject(new XennetError('exec', `the xennet daemon (${path}) answered something that is not JSON`));
      }
    });
  });
}

/** The daemon's result, rethrowing its error as ours. */
export function unwrap(a: DaemonAnswer): unknown {
  if (a.ok) return a.result;
  throw new XennetError(a.error.code === 'refused' ? 'refused' : a.error.code === 'usage' ? 'usage' : 'exec', a.error.message, a.error.hint === undefined ? { exitCode: 1 } : { hint: a.error.hint, exitCode: 1 });
}
