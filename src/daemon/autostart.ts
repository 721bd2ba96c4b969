/**
 * The switch that keeps hooks from starting a daemon (`<run dir>/autostart.off`, read by the
 * vif-xennet client, src/hooks/vif-client.ts): set by `xennet uninstall` before it stops the
 * daemon, by the package while it upgrades, by an operator by hand.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Deadline } from '../sys/deadline.js';
import { acquireHotplugLock } from '../sys/hotplug-lock.js';
import { runPaths } from './paths.js';

export const AUTOSTART_OFF = 'autostart.off';
/** The lock a hook holds while it starts a daemon (flock, as Xen's hotplug lock). */
export const AUTOSTART_LOCK = 'autostart.lock';

/** Sets the switch (the run directory made 0700 if it is not there, as the daemon makes it). */
export function setAutostartOff(env: NodeJS.ProcessEnv, why: string): void {
  const dir = runPaths(env).dir;
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  writeFileSync(join(dir, AUTOSTART_OFF), `${why}\n`);
}

export function clearAutostartOff(env: NodeJS.ProcessEnv): void {
  rmSync(join(runPaths(env).dir, AUTOSTART_OFF), { force: true });
}

/**
 * Sets the switch (unless it is set), then waits (up to 25 s) for a hook that is starting a
 * daemon right now: once this returns, a daemon a hook started is in the pid file, and no hook
 * starts another. Says whether the switch was set before.
 */
export async function stopAutostart(env: NodeJS.ProcessEnv, why: string): Promise<{ wasSet: boolean }> {
  // An operator's switch set before stays as it was (its text too).
  const wasSet = existsSync(join(runPaths(env).dir, AUTOSTART_OFF));
  if (!wasSet) setAutostartOff(env, why);
  const held = await acquireHotplugLock(AUTOSTART_LOCK, { dir: runPaths(env).dir, deadline: Deadline.in(25_000) });
  held.release();
  return { wasSet };
}
