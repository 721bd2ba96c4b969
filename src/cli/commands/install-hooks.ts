/** `xennet install-hooks`: puts vif-xennet and network-xennet where Xen looks for scripts. */
import type { Argv, CommandModule } from 'yargs';
import { runCommand } from '../run-command.js';

interface InstallArgs {
  dir: string;
  dryRun: boolean;
  json: boolean;
}

export const installHooksCommand: CommandModule<object, InstallArgs> = {
  command: 'install-hooks',
  describe: 'install vif-xennet and network-xennet into /etc/xen/scripts (launchers that load this installation)',
  builder: (y) =>
    y
      .option('dir', { type: 'string', default: '/etc/xen/scripts', describe: 'where the toolstack looks for scripts' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'show what would be written, write nothing' })
      .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' })
      .example('sudo $0 install-hooks --dry-run', '') as unknown as Argv<InstallArgs>,
  handler: (argv) =>
    runCommand(argv.json, async () => {
      const { installHooks } = await import('../../hooks/install.js');
      const r = installHooks(argv.dir, argv.dryRun);
      const verb = argv.dryRun ? 'would write' : 'wrote';
      return { json: r, text: r.map((f) => `${verb} ${f.path} (${f.changed ? 'changed' : 'unchanged'})`).join('\n') };
    }),
};
