/** `xennet daemon`: the resident controller (started by xennet.service). */
import type { CommandModule } from 'yargs';

export const daemonCommand: CommandModule<object, { prepare: boolean; reload: boolean }> = {
  command: 'daemon',
  describe: 'run the resident controller in the foreground: hooks in milliseconds, drift repaired (systemd: xennet.service)',
  builder: (y) =>
    y
      .option('prepare', { type: 'boolean', default: true, describe: 'install a guest\'s firewall when its backend appears, before the toolstack runs its hook (--no-prepare: only in the hook)' })
      .option('reload', { type: 'boolean', default: false, describe: 'ask the running daemon to re-read the rule file now, over its socket (the unit\'s ExecReload); no daemon running: nothing to do' })
      .example('sudo $0 daemon', 'what xennet.service runs; SIGHUP re-reads the rule file, SIGTERM stops it')
      .example('sudo $0 daemon --reload', 're-read the rule file (systemctl reload xennet)'),
  handler: async (argv) => {
    if (argv.reload) {
      // Over the socket, never a signal: a daemon still starting (not listening yet) reads the
      // file as it starts, and a SIGHUP before Node handles it would kill it.
      const { askDaemon, unwrap } = await import('../../daemon/client.js');
      const answer = await askDaemon(process.env, { cmd: 'reload' }, 30_000);
      if (answer) unwrap(answer);
      process.stdout.write(answer ? 'xennet daemon: the rule file was re-read\n' : 'xennet daemon: not running; nothing to reload\n');
      return;
    }
    const { runDaemonMain } = await import('../../daemon/main.js');
    process.exitCode = await runDaemonMain(process.env, { prepare: argv.prepare });
  },
};
