/**
 * What the daemon adds to the host's status, whoever renders it (`xennet status`, the metrics):
 * a rule file it could not load, and learning guests that no daemon listens for.
 */
import type { DaemonStats } from '../daemon/server.js';
import type { HostStatus } from './host-status.js';

/** The daemon's view of itself is part of the host's status: a rule file it could not load is a problem. */
export function withDaemon(a: { status: HostStatus; daemon: DaemonStats; read?: HostStatus['read'] }): HostStatus & { daemon: { running: true } & DaemonStats } {
  const s = { ...a.status, daemon: { running: true as const, ...a.daemon }, ...(a.read ? { read: a.read } : {}) };
  if (a.daemon.policy.state === 'kept') {
    s.problems = [...s.problems, `rule file ${a.daemon.policy.file} cannot be used (${a.daemon.policy.problem ?? 'invalid'}); the daemon keeps the policy loaded at ${a.daemon.policy.loadedAt}`];
    s.ok = false;
  }
  return s;
}

/** Learning guests need a daemon that listens: without one they get no new address. */
export function learningProblems(s: HostStatus & { daemon: { running: false } | ({ running: true } & DaemonStats) }): HostStatus {
  const learners = s.vifs.filter((v) => v.addressSource === 'learned').map((v) => v.name);
  if (learners.length === 0) return s;
  const listening = s.daemon.running && s.daemon.learning?.listening === true;
  if (listening) return s;
  const why = s.daemon.running ? 'the daemon is not listening for them (see its log)' : 'no daemon runs (systemctl start xennet)';
  return { ...s, ok: false, problems: [...s.problems, `${learners.join(', ')} learn${learners.length === 1 ? 's' : ''} ${learners.length === 1 ? 'its' : 'their'} addresses, but ${why}: nothing new is learned, and ${learners.length === 1 ? 'it keeps' : 'they keep'} only the bindings shown until they end`] };
}
