/** `xennet status`: is this host's guest networking right? (exit 1 when something is wrong) */
import type { Argv, CommandModule } from 'yargs';
import { resolve } from 'node:path';
import type { DaemonStats } from '../../daemon/server.js';
import type { HostStatus } from '../../status/host-status.js';
import { ExitCode } from '../../sys/errors.js';

/** The daemon's view of itself is part of the host's status: a rule file it could not load is a problem. */
function withDaemon(a: { status: HostStatus; daemon: DaemonStats }): HostStatus & { daemon: { running: true } & DaemonStats } {
  const s = { ...a.status, daemon: { running: true as const, ...a.daemon } };
  if (a.daemon.policy.state === 'kept') {
    s.problems = [...s.problems, `rule file ${a.daemon.policy.file} cannot be used (${a.daemon.policy.problem ?? 'invalid'}); the daemon keeps the policy loaded at ${a.daemon.policy.loadedAt}`];
    s.ok = false;
  }
  return s;
}
import { runCommand } from '../run-command.js';

interface StatusArgs {
  rules?: string;
  json: boolean;
}

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: 'bridges, vifs (domain, addresses, hotplug, firewall state, drops) and anything misconfigured; exit 1 when something is wrong',
  builder: (y) =>
    y
      .option('rules', { type: 'string', describe: 'rule file (default $XENNET_RULES, else /etc/xen/xennet.yaml)' })
      .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' })
      .example('$0 status', 'one screen for the operator')
      .example('$0 status --json | jq .problems', 'for monitoring') as unknown as Argv<StatusArgs>,
  handler: (argv) =>
    runCommand(argv.json, async () => {
      const { hostStatus, renderHostStatus } = await import('../../status/host-status.js');
      const { askDaemon, unwrap } = await import('../../daemon/client.js');
      const { rulesSource } = await import('../../config/paths.js');
      const source = rulesSource(argv.rules);
      const answer = await askDaemon(process.env, { cmd: 'status', rules: resolve(source.file), ...(source.absentOk ? { rulesAbsentOk: true } : {}) }, 120_000);
      const s = answer ? withDaemon(unwrap(answer) as { status: HostStatus; daemon: DaemonStats }) : { ...(await hostStatus(argv.rules === undefined ? {} : { rules: argv.rules })), daemon: { running: false as const } };
      return { json: s, text: renderHostStatus(s, process.stdout.isTTY === true), exitCode: s.ok ? ExitCode.ok : ExitCode.error };
    }),
};
