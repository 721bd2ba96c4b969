/** `xennet status`: is this host's guest networking right? (exit 1 when something is wrong) */
import type { Argv, CommandModule } from 'yargs';
import { ExitCode } from '../../sys/errors.js';
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
      const s = await hostStatus(argv.rules === undefined ? {} : { rules: argv.rules });
      return { json: s, text: renderHostStatus(s, process.stdout.isTTY === true), exitCode: s.ok ? ExitCode.ok : ExitCode.error };
    }),
};
