/** The foreground process of `xennet daemon` (systemd Type=simple). */
import { XennetError, reasonOf } from '../sys/errors.js';
import { createLogger } from '../sys/log.js';
import { rememberIndexParses } from '../firewall/store.js';
import { Daemon } from './server.js';
import { DAEMON_CRASH_EXIT } from './paths.js';

export async function runDaemonMain(env: NodeJS.ProcessEnv = process.env, options: { prepare?: boolean } = {}): Promise<number> {
  // Under systemd stderr goes to the journal (and on to syslog); elsewhere also syslog directly.
  // A log that is a plain file (XENNET_SYSLOG=0, or a terminal) has no timestamps of its own: its lines carry one.
  const journal = Boolean(env['JOURNAL_STREAM']);
  const stamped = !journal ? (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`) : undefined;
  const log = createLogger({ tag: 'xennet-daemon', syslog: !journal && env['XENNET_SYSLOG'] !== '0', ...(stamped ? { write: stamped } : {}) });
  // The daemon loads the index for every hook, watch and check: it keeps the last parse.
  rememberIndexParses();
  let daemon: Daemon;
  try {
    daemon = new Daemon(env, log, options);
  } catch (e) {
    // Nothing was started: a rule file it cannot use (no earlier policy to keep), a bad setting.
    log.err(`not starting: ${e instanceof XennetError ? e.describe() : reasonOf(e)}`);
    return 1;
  }
  // Signals are handled from the start: one that arrives while the daemon starts stops it once
  // it has started (a half-started daemon is never left behind).
  let stopRequested: string | undefined;
  let onStop: ((signal: string) => void) | undefined;
  const request = (signal: string): void => {
    if (onStop) onStop(signal);
    else stopRequested ??= signal;
  };
  // Every one, not only the first: a second SIGTERM (two uninstalls, an impatient operator) must
  // not get Node's default, which would kill the daemon half way through its stop.
  process.on('SIGTERM', () => request('SIGTERM'));
  process.on('SIGINT', () => request('SIGINT'));
  process.on('SIGHUP', () => daemon.policy.reload('SIGHUP'));
  // A promise nobody waited for that failed (a background task's write on a full disk): said,
  // counted, and the daemon goes on; its work is retried by the watch or check it came from.
  process.on('unhandledRejection', (e: unknown) => {
    daemon.noteError(`unexpected: ${reasonOf(e)}`);
    log.err(`unexpected failure in a background task (the daemon goes on): ${e instanceof Error ? (e.stack ?? e.message) : reasonOf(e)}`);
  });
  // An exception nothing caught leaves the daemon in a state nobody knows: said where the
  // daemon's log goes (syslog or the journal, not only stderr), then exit 70 (systemd, or the
  // supervisor of a daemon a hook started, starts it again; 1 is a refusal to start).
  process.on('uncaughtException', (e: Error) => {
    log.err(`unexpected exception, exiting: ${e.stack ?? e.message}`);
    process.exit(DAEMON_CRASH_EXIT);
  });
  try {
    await daemon.start();
  } catch (e) {
    log.err(e instanceof XennetError ? e.describe() : reasonOf(e));
    await daemon.stop().catch(() => undefined);
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    onStop = (signal: string): void => {
      if (stopping) return log.info(`${signal}: already stopping`);
      stopping = true;
      log.info(`${signal}: finishing the calls in flight`);
      void daemon.stop().then(
        () => resolve(0),
        (e: unknown) => {
          log.err(`stopping: ${reasonOf(e)}`);
          resolve(1);
        },
      );
    };
    if (stopRequested) onStop(stopRequested);
  });
}
