/** Every command of the CLI, in the order `--help` lists them (main.ts registers them; the man page reads them). */
import type { CommandModule } from 'yargs';
import { bridgeCommand } from './bridge.js';
import { daemonCommand } from './daemon.js';
import { demoCommand } from './demo.js';
import { applyCommand, checkCommand, planCommand, schemaCommand } from './firewall.js';
import { installHooksCommand } from './install-hooks.js';
import { metricsCommand } from './metrics.js';
import { dropsCommand } from './drops.js';
import { statusCommand } from './status.js';
import { uninstallCommand } from './uninstall.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each command has its own argument type
export const commands: readonly CommandModule<object, any>[] = [statusCommand, dropsCommand, metricsCommand, bridgeCommand, planCommand, applyCommand, checkCommand, schemaCommand, demoCommand, installHooksCommand, daemonCommand, uninstallCommand];

/** The root usage lines. */
export const ROOT_USAGE = 'Network bridge and guest firewall controller for Xen dom0 hosts.';
export const ROOT_EXAMPLES: readonly (readonly [string, string])[] = [
  ['sudo $0 demo', 'see it work on a simulated Xen host'],
  ['$0 status', 'is this host\'s guest networking right?'],
  ['$0 plan', 'what would apply change?'],
];
export const COMPLETION = { command: 'completion', describe: 'print a bash/zsh completion script (source <(xennet completion))' } as const;
