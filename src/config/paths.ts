import { lstatSync, readlinkSync } from 'node:fs';
import { resolve } from 'node:path';
/** Where the rule file is (kept apart from the parser so the hook can find it cheaply). */
export const DEFAULT_RULES_PATH = '/etc/xen/xennet.yaml';

/** The rules path: explicit, else $XENNET_RULES, else /etc/xen/xennet.yaml. */
export function rulesPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return rulesSource(explicit, env).file;
}

/**
 * Which rule file to read, and whether it may be absent: only the default path, used because
 * neither `--rules` nor $XENNET_RULES named one, may be missing (then the built-in defaults
 * apply). A path someone named and that is not there is a mistake, never "no policy".
 */
export interface RulesSource {
  file: string;
  absentOk: boolean;
}

export function rulesSource(explicit?: string, env: NodeJS.ProcessEnv = process.env): RulesSource {
  if (explicit !== undefined) return { file: explicit, absentOk: false };
  const named = env['XENNET_RULES'];
  if (named) return { file: named, absentOk: false };
  return { file: DEFAULT_RULES_PATH, absentOk: true };
}

/** A daemon request about a rule file: `status` (`fresh`: read everything now), `plan` or `apply`; the path made absolute (the daemon runs elsewhere). */
export function rulesRequest(cmd: 'status' | 'plan' | 'apply', source: RulesSource, fresh = false): { cmd: 'status' | 'plan' | 'apply'; rules: string; rulesAbsentOk?: true; fresh?: true } {
  return { cmd, rules: resolve(source.file), ...(source.absentOk ? { rulesAbsentOk: true as const } : {}), ...(fresh ? { fresh: true as const } : {}) };
}

/**
 * The target of a rule file path that is a symbolic link to nothing, else undefined. Such a path
 * is not "absent": an administrator pointed it somewhere (a mount not there yet, a typo), and the
 * built-in defaults would silently replace the policy.
 */
export function danglingTarget(file: string): string | undefined {
  try {
    return lstatSync(file).isSymbolicLink() ? readlinkSync(file) : undefined;
  } catch {
    return undefined;
  }
}
