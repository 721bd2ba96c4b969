/** `xennet daemon`: the resident controller (started by xennet.service). */
import type { CommandModule } from 'yargs';

export const daemonCommand: CommandModule<object, { prepare: boolean }> = {
  command: 'daemon',
  describe: 'run the resident controller in the foreground: hooks in milliseconds, drift repaired (systemd: xennet.service)',
  builder: (y) =>
    y
      .option('prepare', { type: 'boolean', default: true, describe: 'install a guest\'s firewall when its backend appears, before the toolstack runs its hook (--no-prepare: only in the hook)' })
      .example('sudo $0 daemon', 'what xennet.service runs; SIGHUP re-reads the rule file, SIGTERM stops it'),
  handler: async (argv) => {
    const { runDaemonMain } = await import('../../daemon/main.js');
    process.exitCode = await runDaemonMain(process.env, { prepare: argv.prepare });
  },
};
