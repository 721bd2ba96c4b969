/**
 * A thin driver around the system's `ipset` (Debian package ipset): the xtables backend keeps a
 * learning guest's bound addresses in two sets whose elements time out with their lease, read by
 * `-m set` rules (learned-xtables.ts). Writes go through `ipset restore` (one process for any
 * number of lines; `-exist` makes an add of what is there and a del of what is not no-ops).
 */
import { XennetError } from '../../sys/errors.js';
import { findProgram, needProgram, run } from '../../sys/exec.js';

export const ipsetPath = (): string | undefined => findProgram('ipset');

const needIpset = (): string => needProgram('ipset', 'ipset', 'address learning on the xtables backend keeps its bindings in ipsets');

/** Applies `ipset restore -exist` lines; a rejected line fails the call (the lines before it stay). */
export async function ipsetRestore(lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  const r = await run(needIpset(), ['restore', '-exist'], { input: `${lines.join('\n')}\n` });
  if (r.code !== 0) throw new XennetError('exec', `ipset restore failed: ${r.stderr.trim().split('\n').slice(0, 3).join(' ') || `exit ${r.code}`}`);
}

/** `ipset save [NAME]`'s text, or undefined when the set (or the program) is not there. */
export async function ipsetSave(name?: string): Promise<string | undefined> {
  const ipset = ipsetPath();
  if (!ipset) return undefined;
  const r = await run(ipset, ['save', ...(name !== undefined ? [name] : [])]);
  if (r.code === 0) return r.stdout;
  if (/does not exist/.test(r.stderr)) return undefined;
  throw new XennetError('exec', `ipset save ${name} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
}

/** The names of the sets there are (none without the program). */
export async function ipsetNames(): Promise<string[]> {
  const ipset = ipsetPath();
  if (!ipset) return [];
  const r = await run(ipset, ['list', '-n']);
  if (r.code !== 0) throw new XennetError('exec', `ipset list -n failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout.split('\n').filter((l) => l !== '');
}

/** Destroys these sets where they exist and nothing references them (true: all are gone). */
export async function ipsetDestroy(names: readonly string[]): Promise<boolean> {
  const ipset = ipsetPath();
  if (!ipset) return true;
  let gone = true;
  for (const n of names) {
    const r = await run(ipset, ['destroy', n]);
    if (r.code !== 0 && !/does not exist/.test(r.stderr)) gone = false;
  }
  return gone;
}
