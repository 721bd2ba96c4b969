/** `xennet status`: is this host's guest networking right? (exit 1 when something is wrong) */
import type { Argv, CommandModule } from 'yargs';
import type { DaemonStats } from '../../daemon/server.js';
import type { HostStatus } from '../../status/host-status.js';
import { ExitCode, XennetError } from '../../sys/errors.js';

import { runCommand } from '../run-command.js';
import { learningProblems, withDaemon } from '../../status/daemon-problems.js';
import { quickStatusFound } from '../quick-status.js';

interface StatusArgs {
  guest?: string;
  rules?: string;
  json: boolean;
  fresh: boolean;
}

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status [guest]',
  describe: 'bridges, vifs (domain, addresses, hotplug, firewall state, drops) and anything misconfigured; with GUEST, that guest alone in full; exit 1 when something is wrong',
  builder: (y) =>
    y
      .positional('guest', { type: 'string', describe: 'one guest: its domain name, domain id or vif name (its policy and where each setting comes from, its interfaces, firewall, drops, last hook calls and pending changes)' })
      .option('rules', { type: 'string', describe: 'rule file (default $XENNET_RULES, else /etc/xen/xennet.yaml)' })
      .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' })
      .option('fresh', { type: 'boolean', default: false, describe: 'through the daemon: read everything now, not what it remembers (it answers from memory while nothing it reads has changed, for up to 5 minutes: drop counters move meanwhile)' })
      .example('$0 status', 'one screen for the operator')
      .example('$0 status --json | jq .problems', 'for monitoring')
      .example('$0 status web01', 'one guest at a glance (exit 1 when something is wrong with it)') as unknown as Argv<StatusArgs>,
  handler: (argv) =>
    runCommand(argv.json, async () => {
      // Not nft's "Operation not permitted" half way: said before anything is read.
      if (process.getuid?.() !== 0) throw new XennetError('refused', "status reads the firewall, xenstore and the daemon's socket, which only root may: run it as root (sudo xennet status)");
      const { colorWanted, terminalWidth } = await import('../terminal.js');
      const { askDaemon, unwrap, STATUS_DAEMON_WAIT_MS } = await import('../../daemon/client.js');
      const { rulesSource, rulesRequest } = await import('../../config/paths.js');
      const source = rulesSource(argv.rules);
      const { daemonEvidence, daemonExpectation } = await import('../../status/daemon-expected.js');
      // A daemon that takes the request and stays silent (stopped, hung) is a problem, not a wait: the host is read here instead.
      let silent = quickStatusFound === 'silent';
      const answer = silent ? undefined : await askDaemon(process.env, rulesRequest('status', source, argv.fresh), STATUS_DAEMON_WAIT_MS).catch((e: unknown) => {
        if (!(e instanceof XennetError && e.code === 'timeout')) throw e;
        silent = true;
        return undefined;
      });
      const s = answer ? withDaemon(unwrap(answer) as { status: HostStatus; daemon: DaemonStats; read?: HostStatus['read'] }) : { ...(await (await import('../../status/host-status.js')).hostStatus(argv.rules === undefined ? {} : { rules: argv.rules })), daemon: { running: false as const } };
      const expected = daemonExpectation(daemonEvidence(process.env, answer ? 'yes' : silent ? 'silent' : 'none'));
      if (expected.problem) Object.assign(s, { ok: false, problems: [...s.problems, expected.problem] });
      if (expected.note) s.notes = [...s.notes, expected.note];
      const checked = learningProblems(s);
      if (argv.guest !== undefined) {
        const { guestScreen } = await import('../guest-status.js');
        const view = await guestScreen(argv.guest, checked, source, answer !== undefined);
        const { renderGuestView } = await import('../../status/guest-render.js');
        return { json: view, text: renderGuestView(view, colorWanted(process.env, process.stdout.isTTY === true), terminalWidth(process.env, process.stdout.isTTY ? process.stdout.columns : undefined)), exitCode: view.ok ? ExitCode.ok : ExitCode.error };
      }
      const { statusOutcome } = await import('../../status/status-outcome.js');
      return { json: checked, ...statusOutcome(checked, { json: argv.json, color: colorWanted(process.env, process.stdout.isTTY === true), width: terminalWidth(process.env, process.stdout.isTTY ? process.stdout.columns : undefined) }) };
    }),
};
