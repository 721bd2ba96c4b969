/** xennet's command line: yargs root; every command module lazy-imports the work it does. */
import yargs, { type Argv, type CommandModule } from 'yargs';
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

/** A command's own options, whichever form its builder has. */
function commandBuilder(c: CommandModule, y: Argv): Argv {
  if (typeof c.builder === 'function') return c.builder(y) as Argv;
  return c.builder ? y.options(c.builder) : y;
}

/** `completion --help`: what the command does, not the script (yargs prints the script). */
const COMPLETION_HELP = `xennet ${COMPLETION.command}

${COMPLETION.describe[0]!.toUpperCase()}${COMPLETION.describe.slice(1)}.

Install it with \`xennet ${COMPLETION.command} >> ~/.bashrc\` (the Debian package installs
/usr/share/bash-completion/completions/xennet).
`;

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === COMPLETION.command && argv.slice(1).some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(COMPLETION_HELP);
    return;
  }
  let y = yargs(argv).scriptName('xennet').usage(`$0 <command> [options]\n\n${ROOT_USAGE}`);
  for (const [cmd, what] of ROOT_EXAMPLES) y = y.example(cmd, what);
  const width = Math.min(110, process.stdout.columns || 100);
  y = y.epilogue(helpEpilogue(width));
  // --version is the program's, not a command's: `xennet status --version` is a usage error.
  for (const c of commands) y = y.command({ ...c, builder: (b: Argv) => commandBuilder(c, b).version(false) });
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
