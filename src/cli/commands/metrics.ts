/** `xennet metrics`: what status knows, in Prometheus' text exposition format. */
import type { Argv, CommandModule } from 'yargs';
import { XennetError } from '../../sys/errors.js';
import { runCommand } from '../run-command.js';

export const metricsCommand: CommandModule<object, object> = {
  command: 'metrics',
  describe: "print the host's metrics in Prometheus' text format (drops by guest and reason, firewall in sync, hook durations and failures, the daemon's repairs, memory and uptime); the daemon writes the same to /var/lib/prometheus/node-exporter/xennet.prom every 15 s when that directory exists",
  builder: (y) => y.example('$0 metrics | promtool check metrics', 'what node-exporter would read') as unknown as Argv<object>,
  handler: () =>
    runCommand(false, async () => {
      if (process.getuid?.() !== 0) throw new XennetError('refused', "metrics reads the firewall, xenstore and the daemon's socket, which only root may: run it as root (sudo xennet metrics)");
      const { askDaemon, unwrap, STATUS_DAEMON_WAIT_MS } = await import('../../daemon/client.js');
      // A daemon that takes the request and stays silent (stopped, hung): the host is read here.
      const answer = await askDaemon(process.env, { cmd: 'metrics' }, STATUS_DAEMON_WAIT_MS).catch((e: unknown) => {
        if (e instanceof XennetError && e.code === 'timeout') return undefined;
        throw e;
      });
      let text: string;
      if (answer) text = (unwrap(answer) as { text: string }).text;
      else {
        // No daemon: the host read now, and the hook calls the journal holds.
        const { hostStatus } = await import('../../status/host-status.js');
        const { renderMetrics } = await import('../../metrics/exposition.js');
        const { HookStats, JournalFollower } = await import('../../metrics/hook-stats.js');
        const { journalPath } = await import('../../hooks/hook-journal.js');
        const readAt = Date.now();
        const { learningProblems } = await import('../../status/daemon-problems.js');
        const status = learningProblems({ ...(await hostStatus()), daemon: { running: false as const } });
        const hooks = new HookStats();
        for (const r of new JournalFollower(journalPath(process.env)).next()) hooks.add(r);
        text = renderMetrics({ status, readAt, hooks: hooks.all() });
      }
      return { json: null, text: text.replace(/\n$/, '') };
    }),
};
