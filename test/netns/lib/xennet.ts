/** Runs xennet's real executables (the built CLI and hooks) inside a test namespace. */
import { fileURLToPath } from 'node:url';
import type { ExecResult } from '../../../src/sys/exec.js';
import type { Netns } from './netns.js';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
export const cliPath = `${root}dist/src/cli/main.js`;
export const hooksBin = `${root}hooks-bin`;

export interface Runner {
  (args: string[], env?: NodeJS.ProcessEnv): Promise<ExecResult>;
}

/** A runner for `xennet ...` in `ns` with its own state directory. */
export function xennetIn(ns: Netns, stateDir: string): Runner {
  return (args, env = {}) => ns.exec('node', [cliPath, ...args], { env: { ...process.env, XENNET_STATE_DIR: stateDir, ...env }, timeoutMs: 60_000 });
}

export function hookIn(ns: Netns, stateDir: string, hook: string): Runner {
  return (args, env = {}) => ns.exec(`${hooksBin}/${hook}`, args, { env: { ...process.env, XENNET_STATE_DIR: stateDir, ...env }, timeoutMs: 60_000 });
}
