/** `xennet install-hooks`: puts vif-xennet and network-xennet where Xen looks for scripts. */
import type { Argv, CommandModule } from 'yargs';
import { XennetError } from '../../sys/errors.js';
import { runCommand } from '../run-command.js';

/** Defined (true) by the Debian package's bundler. */
declare const XENNET_PACKAGED: boolean | undefined;

interface InstallArgs {
  dir: string;
  unitDir: string;
  unit: boolean;
  dryRun: boolean;
  json: boolean;
}

export const installHooksCommand: CommandModule<object, InstallArgs> = {
  command: 'install-hooks',
  describe: 'install vif-xennet and network-xennet into /etc/xen/scripts, and the daemon\'s systemd unit (xennet.service)',
  builder: (y) =>
    y
      .option('dir', { type: 'string', default: '/etc/xen/scripts', describe: 'where the toolstack looks for scripts' })
      .option('unit-dir', { type: 'string', default: '/etc/systemd/system', describe: 'where the systemd unit xennet.service goes' })
      .option('unit', { type: 'boolean', default: true, describe: 'install the unit (--no-unit: only the hooks)' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'show what would be written (and print the unit), write nothing' })
      .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' })
      .example('sudo $0 install-hooks --dry-run', '') as unknown as Argv<InstallArgs>,
  handler: (argv) =>
    runCommand(argv.json, async () => {
      if (typeof XENNET_PACKAGED === 'boolean' && XENNET_PACKAGED) {
        throw new XennetError('usage', 'this xennet is the Debian package, which installed the hooks (/etc/xen/scripts/vif-xennet, network-xennet) and the units (/lib/systemd/system/xennet.service, xennet-bridge.service) itself', {
          hint: 'nothing to do; install-hooks is for an npm installation',
        });
      }
      const { installHooks, unitText } = await import('../../hooks/install.js');
      const r = installHooks({ dir: argv.dir, unitDir: argv.unit ? argv.unitDir : null, dryRun: argv.dryRun });
      const verb = argv.dryRun ? 'would write' : 'wrote';
      const lines = r.map((f) => `${verb} ${f.path} (${f.state})`);
      if (argv.unit) {
        if (argv.dryRun) lines.push('', unitText().trimEnd());
        else lines.push('', 'start the daemon: systemctl daemon-reload && systemctl enable --now xennet');
      }
      return { json: r, text: lines.join('\n') };
    }),
};
