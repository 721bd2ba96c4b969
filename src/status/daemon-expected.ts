/**
 * Whether `status` should have found a daemon: one that does not answer (stopped, hung), one that
 * ended without being asked to (its pid file is still there), or systemd's unit enabled while
 * none runs. Hooks then run in-process (slower: a boot storm can lose guests) or wait for a hung
 * one up to their budget, and nobody repairs what another program flushes. The operator's switch
 * (`autostart.off`) makes no daemon the intended state.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AUTOSTART_OFF } from '../daemon/autostart.js';
import { runPaths } from '../daemon/paths.js';
import { commandOf, pidRunning, readPidFile } from '../sys/process.js';

import { STATUS_DAEMON_WAIT_MS } from '../daemon/client.js';

export interface DaemonEvidence {
  /** `yes`: it answered; `none`: nothing listens; `silent`: it took the request and did not answer in time. */
  answered: 'yes' | 'none' | 'silent';
  /** The pid its pid file names, and whether a daemon runs under that pid. */
  pidFile?: { pid: number; alive: boolean };
  /** systemd runs, and xennet.service is enabled. */
  unitEnabled: boolean;
  autostartOff: boolean;
}

export function daemonExpectation(e: DaemonEvidence): { problem?: string; note?: string } {
  if (e.answered === 'yes') return {};
  const restart = e.unitEnabled ? '`systemctl restart xennet`' : 'kill it; the next hook starts a new one';
  if (e.answered === 'silent') {
    return { problem: `the xennet daemon${e.pidFile ? ` (pid ${e.pidFile.pid})` : ''} took the request and did not answer within ${STATUS_DAEMON_WAIT_MS / 1000} s (stopped or hung?): hooks hand their calls to it and wait up to their budget, and it repairs nothing; this status was read without it. ${restart === '`systemctl restart xennet`' ? 'Run `systemctl restart xennet`' : 'Kill it (the next hook starts a new one)'}` };
  }
  if (e.autostartOff) return { note: 'no xennet daemon runs, as autostart.off in its run directory asks: hooks run in-process, and nobody repairs what another program flushes' };
  if (e.pidFile && !e.pidFile.alive) {
    return { problem: `the xennet daemon (pid ${e.pidFile.pid}) ended without being stopped (killed, or it crashed: its log says why), and none runs now: hooks run in-process and nobody repairs what another program flushes; ${e.unitEnabled ? '`systemctl restart xennet`' : 'the next hook starts one, or `xennet daemon` in the background now'}` };
  }
  if (e.unitEnabled) return { problem: 'xennet.service is enabled, but no daemon runs: hooks run in-process and nobody repairs what another program flushes; `systemctl status xennet` says why, `systemctl start xennet` starts it' };
  return {};
}

/** What the files say (the socket's answer is the caller's). */
export function daemonEvidence(env: NodeJS.ProcessEnv, answered: DaemonEvidence['answered']): DaemonEvidence {
  const paths = runPaths(env);
  const pid = readPidFile(paths.pid);
  const e: DaemonEvidence = {
    answered,
    unitEnabled: paths.dir === '/run/xennet' && existsSync('/run/systemd/system') && ['/etc/systemd/system/multi-user.target.wants/xennet.service', '/etc/systemd/system/xen.target.wants/xennet.service'].some((f) => existsSync(f)),
    autostartOff: existsSync(join(paths.dir, AUTOSTART_OFF)),
  };
  if (pid !== undefined) e.pidFile = { pid, alive: pidRunning(pid) && / daemon( |$)/.test(commandOf(pid)) };
  return e;
}
