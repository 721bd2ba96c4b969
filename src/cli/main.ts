#!/usr/bin/env node
/** xennet's command line: yargs root; every command module lazy-imports the work it does. */
import './early-signals.js';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { readFileSync } from 'node:fs';
import { COMPLETION, ROOT_EXAMPLES, ROOT_USAGE, commands } from './commands/index.js';
import { helpEpilogue } from './reference.js';

/** Set by the Debian package's bundler (esbuild define); the source tree reads package.json. */
declare const XENNET_BUNDLED_VERSION: string | undefined;

function version(): string {
  if (typeof XENNET_BUNDLED_VERSION === 'string') return XENNET_BUNDLED_VERSION;
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<void> {
  let y = yargs(argv).scriptName('xennet').usage(`$0 <command> [options]\n\n${ROOT_USAGE}`);
  for (const [cmd, what] of ROOT_EXAMPLES) y = y.example(cmd, what);
  const width = Math.min(110, process.stdout.columns || 100);
  y = y.epilogue(helpEpilogue(width));
  for (const c of commands) y = y.command(c);
  await y
    .completion(COMPLETION.command, COMPLETION.describe)
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .version(version())
    .help()
    .alias('h', 'help')
    .wrap(width)
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`xennet: usage error: ${msg}\n(see xennet --help)\n`);
      process.exit(64);
    })
    .parseAsync();
}

await main(hideBin(process.argv));
