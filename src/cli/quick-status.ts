/**
 * `xennet status`, `--json`, `--fresh` (and nothing else on the line) through a running daemon,
 * without the command line parser or the renderer: the daemon renders what the CLI prints
 * (status/status-outcome.ts). At 1000 guests, loading yargs and the renderer, and parsing the
 * daemon's JSON, cost the CLI more than Node's own start.
 *
 * Anything else, and any answer but a rendered status (no daemon, not root, an error, a daemon
 * from before `render`), goes to the full command (commands/status.ts), which says it as always.
 * A daemon that took the request and stayed silent is not asked again there.
 */
import { rulesRequest, rulesSource } from '../config/paths.js';
import { askDaemon, STATUS_DAEMON_WAIT_MS, type DaemonAnswer } from '../daemon/client.js';
import { XennetError } from '../sys/errors.js';
import { colorWanted, terminalWidth } from './terminal.js';

/** `silent`: the daemon took the quick path's request and did not answer in time. */
export let quickStatusFound: 'silent' | undefined;

const QUICK_OPTIONS = new Set(['--json', '--fresh']);

/** Whether the command line is one the quick path answers. */
const isQuickStatus = (argv: readonly string[]): boolean => argv[0] === 'status' && new Set(argv.slice(1)).size === argv.length - 1 && argv.slice(1).every((a) => QUICK_OPTIONS.has(a));

/** Whether it printed the status (else the full command line takes over). */
export async function quickStatus(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<boolean> {
  if (!isQuickStatus(argv) || process.getuid?.() !== 0) return false;
  const form = { json: argv.includes('--json'), color: colorWanted(env, process.stdout.isTTY === true), width: terminalWidth(env, process.stdout.isTTY ? process.stdout.columns : undefined) };
  let answer: DaemonAnswer | undefined;
  try {
    answer = await askDaemon(env, { ...rulesRequest('status', rulesSource(undefined, env), argv.includes('--fresh')), render: form }, STATUS_DAEMON_WAIT_MS);
  } catch (e) {
    if (e instanceof XennetError && e.code === 'timeout') quickStatusFound = 'silent';
    return false;
  }
  const rendered = answer?.ok === true ? (answer.result as { rendered?: { text?: unknown; exitCode?: unknown } } | null)?.rendered : undefined;
  if (typeof rendered?.text !== 'string' || (rendered.exitCode !== 0 && rendered.exitCode !== 1)) return false;
  process.stdout.write(`${rendered.text}\n`);
  process.exitCode = rendered.exitCode;
  return true;
}
