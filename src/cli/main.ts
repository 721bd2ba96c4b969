#!/usr/bin/env node
/** xennet's command line: yargs root; every command module lazy-imports the work it does. */
import './early-signals.js';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { readFileSync } from 'node:fs';
import { bridgeCommand } from './commands/bridge.js';
import { applyCommand, checkCommand, planCommand, schemaCommand } from './commands/firewall.js';
import { statusCommand } from './commands/status.js';
import { demoCommand } from './commands/demo.js';
import { installHooksCommand } from './commands/install-hooks.js';
import { daemonCommand } from './commands/daemon.js';
import { uninstallCommand } from './commands/uninstall.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('xennet')
    .usage('$0 <command> [options]\n\nNetwork bridge and guest firewall controller for Xen dom0 hosts.')
    .example('sudo $0 demo', 'see it work on a simulated Xen host')
    .example('$0 status', 'is this host\'s guest networking right?')
    .example('$0 plan', 'what would apply change?')
    .epilogue('Exit codes: 0 ok, 1 error or problem found, 2 plan has changes pending, 64 usage error. Docs: docs/ in the package.')
    .command(statusCommand)
    .command(bridgeCommand)
    .command(planCommand)
    .command(applyCommand)
    .command(checkCommand)
    .command(schemaCommand)
    .command(demoCommand)
    .command(installHooksCommand)
    .command(daemonCommand)
    .command(uninstallCommand)
    .completion('completion', 'print a bash/zsh completion script (source <(xennet completion))')
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .version(version())
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`xennet: usage error: ${msg}\n(see xennet --help)\n`);
      process.exit(64);
    })
    .parseAsync();
}

await main(hideBin(process.argv));
