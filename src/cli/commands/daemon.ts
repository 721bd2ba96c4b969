/** `xennet daemon`: the resident controller (started by xennet.service). */
import type { CommandModule } from 'yargs';

export const daemonCommand: CommandModule<object, object> = {
  command: 'daemon',
  describe: 'run the resident controller in the foreground: hooks in milliseconds, drift repaired (systemd: xennet.service)',
  builder: (y) => y.example('sudo $0 daemon', 'what xennet.service runs; SIGHUP re-reads the rule file, SIGTERM stops it'),
  handler: async () => {
    const { runDaemonMain } = await import('../../daemon/main.js');
    process.exitCode = await runDaemonMain(process.env);
  },
};
