/**
 * Xen's own hotplug scripts (Debian's xen-utils-common, /etc/xen/scripts) as the side-by-side
 * comparisons run them: a copy in which vif-bridge's iptables part is re-enabled. Debian ships
 * `handle_iptable` in vif-common.sh with an early `return 0` (Debian bug #894013); the copy has
 * that line removed, so vif-bridge inserts its per-vif physdev rules like upstream Xen 4.x.
 * Never applied to the machine's own /etc/xen: the benchmarks patch a temporary copy, the system
 * suite a copy on a tmpfs inside its private mount namespace.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const XEN_SCRIPTS_DIR = '/etc/xen/scripts';

/** vif-common.sh's text with the early `return 0` of `handle_iptable` removed. */
export function enableIptablesInVifCommon(text: string): string {
  const patched = text.replace(/(handle_iptable\(\)\n\{\n(?:\s*#.*\n)*)\s*return 0\n/, '$1');
  if (patched === text) throw new Error('could not re-enable handle_iptable in vif-common.sh (no early "return 0" found)');
  return patched;
}

/** Re-enables vif-bridge's iptables part in the scripts directory `dir` (a copy, never the original). */
export function enableIptablesInScripts(dir: string): void {
  const common = join(dir, 'vif-common.sh');
  writeFileSync(common, enableIptablesInVifCommon(readFileSync(common, 'utf8')));
}

/** Copies Xen's scripts from `from` to `to` (modes kept) and re-enables vif-bridge's iptables part there. */
export function copyXenScriptsWithIptables(to: string, from: string = XEN_SCRIPTS_DIR): string {
  cpSync(from, to, { recursive: true, verbatimSymlinks: true });
  enableIptablesInScripts(to);
  return to;
}
