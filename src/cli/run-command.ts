/**
 * The one place the CLI catches errors: runs a command body, prints its result (text, or JSON
 * with --json), and sets the exit code from the error hierarchy.
 */
import { ExitCode, XennetError } from '../sys/errors.js';

export interface Outcome {
  /** What --json prints. */
  json: unknown;
  /** What a person sees. */
  text: string;
  exitCode?: number;
}

export async function runCommand(json: boolean, body: () => Promise<Outcome>): Promise<void> {
  try {
    const out = await body();
    process.stdout.write((json ? JSON.stringify(out.json, null, 2) : out.text) + '\n');
    process.exitCode = out.exitCode ?? ExitCode.ok;
  } catch (e) {
    const err = e instanceof XennetError ? e : new XennetError('internal', e instanceof Error ? (e.stack ?? e.message) : String(e));
    if (json) process.stdout.write(JSON.stringify({ error: err.toJSON() }, null, 2) + '\n');
    process.stderr.write(`xennet: error: ${err.describe()}\n`);
    process.exitCode = err.exitCode;
  }
}
