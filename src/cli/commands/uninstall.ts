/** `xennet uninstall`: takes xennet off the host (daemon, firewall, settings, installed files). */
import type { Argv, CommandModule } from 'yargs';
import { runCommand } from '../run-command.js';

/** Defined (true) by the Debian package's bundler. */
declare const XENNET_PACKAGED: boolean | undefined;

interface UninstallArgs {
  dryRun: boolean;
  force: boolean;
  json: boolean;
}

export const uninstallCommand: CommandModule<object, UninstallArgs> = {
  command: 'uninstall',
  describe: 'remove everything xennet put on this host: stop the daemon, remove its firewall, restore the settings it changed, remove the files install-hooks wrote (the bridge takeover stays: `xennet bridge stop`)',
  builder: (y) =>
    y
      .option('dry-run', { type: 'boolean', default: false, describe: 'print every step, change nothing' })
      .option('force', { type: 'boolean', default: false, describe: 'proceed while guests are attached (they lose their firewall)' })
      .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' })
      .example('sudo $0 uninstall --dry-run', 'what would be removed and restored')
      .example('sudo $0 uninstall', 'refused while guests are attached; --force to go ahead') as unknown as Argv<UninstallArgs>,
  handler: (argv) =>
    runCommand(argv.json, async () => {
      const { uninstall, renderUninstall } = await import('../../uninstall/run.js');
      const r = await uninstall({ dryRun: argv.dryRun, force: argv.force });
      const packaged = typeof XENNET_PACKAGED === 'boolean' && XENNET_PACKAGED;
      const text = renderUninstall(r) + (packaged && !r.dryRun ? '\nThe package\'s own files (the program, the hooks in /etc/xen/scripts, the units) stay until `apt remove xennet`; `apt purge xennet` also removes the state directory.' : '');
      return { json: r, text };
    }),
};
