/** `xennet demo [--keep]` and `xennet demo down`. */
import type { Argv, CommandModule } from 'yargs';
import { XennetError } from '../../sys/errors.js';
import { runCommand } from '../run-command.js';

/** Defined (true) by the Debian package's bundler: the package has no simulated host. */
declare const XENNET_PACKAGED: boolean | undefined;

interface DemoArgs {
  action?: string;
  keep: boolean;
}

export const demoCommand: CommandModule<object, DemoArgs> = {
  command: 'demo [action]',
  describe: 'run xennet end to end on a simulated Xen host in network namespaces (root), then tear it down',
  builder: (y) =>
    y
      .positional('action', { choices: ['down'] as const, describe: 'down: remove a host left by --keep' })
      .option('keep', { type: 'boolean', default: false, describe: 'leave the simulated host up and print how to enter it' })
      .example('sudo $0 demo', 'the whole story in about 30 seconds')
      .example('sudo $0 demo --keep', 'explore it afterwards; `xennet demo down` removes it') as unknown as Argv<DemoArgs>,
  handler: async (argv) => {
    if (typeof XENNET_PACKAGED === 'boolean' && XENNET_PACKAGED) {
      await runCommand(false, async () => {
        throw new XennetError('usage', 'the demo runs from xennet\'s source tree, not from the installed package', { hint: 'git clone the source, then: npm ci && sudo npm run demo' });
      });
      return;
    }
    const demo = await import('../../sim/demo.js');
    if (argv.action === 'down') {
      await runCommand(false, async () => ({ json: null, text: await demo.demoDown() }));
      return;
    }
    await runCommand(false, async () => {
      const code = await demo.runDemo({ keep: argv.keep, color: (await import('../terminal.js')).colorWanted(process.env, process.stdout.isTTY === true), out: (l) => process.stdout.write(l + '\n') });
      return { json: null, text: '', exitCode: code };
    });
  },
};
