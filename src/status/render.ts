/**
 * `xennet status` on a terminal: one screen for the operator. Only types of host-status.ts: the
 * CLI that gets its status from the daemon loads this, not the code that reads the host.
 */
import type { PolicyNameSource } from '../firewall/domain-identity.js';
import { printable } from '../net/index.js';
import type { HostStatus, VifStatus } from './host-status.js';

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

function daemonLine(d: NonNullable<HostStatus['daemon']>): string {
  if (!d.running) return 'daemon: not running (hooks run in-process)';
  const parts = [`daemon: running, pid ${d.pid}, up ${duration(d.uptimeSeconds)}`, `${d.hookCalls} hook call${d.hookCalls === 1 ? '' : 's'} (${d.hookFailures} failed)`, `${d.repairs} repair${d.repairs === 1 ? '' : 's'}`, `RSS ${d.rssMiB} MiB`];
  if (d.backends) parts.push(`${d.backends.prepared} firewall${d.backends.prepared === 1 ? '' : 's'} prepared before the hook`);
  if (d.names) parts.push(`names of ${d.names.domains} domain${d.names.domains === 1 ? '' : 's'} watched, ${d.names.followed} renamed vif${d.names.followed === 1 ? '' : 's'} moved to their new policy`);
  if (d.drift.lastRepair) parts.push(`last repair ${printable(d.drift.lastRepair)}`);
  parts.push(`last error ${d.lastError ? printable(d.lastError) : 'none'}`);
  return parts.join('; ');
}

/** The POLICY cell: the rule-file guest (or `defaults`), and the name it was found by when that is not the domain's own. */
function policyCell(v: VifStatus): string {
  const base = v.policy ? printable(v.policy) : 'defaults';
  const how: Record<PolicyNameSource, string> = { name: '', incoming: ' (incoming)', migratedaway: ' (migrated)', stubdom: ' (stub dom)' };
  return `${base}${how[v.policySource]}`;
}

/** The ADDRESSES cell: declared addresses, `learned: ...`, or `- (any)` for a guest with no protection. */
function addressCell(v: VifStatus): string {
  if (v.addressSource === 'learned') return `learned: ${v.learned.map((b) => b.address).join(' ') || 'none yet'}`;
  if (v.addressSource === 'none') return v.addresses.length > 0 ? `${v.addresses.join(' ')} (unchecked)` : '- (any)';
  if (v.addressSource === 'open') return '- (open)';
  return v.addresses.join(' ');
}

export function renderHostStatus(s: HostStatus, color: boolean): string {
  const c = (code: string, t: string): string => (color ? `\x1b[${code}m${t}\x1b[0m` : t);
  const lines: string[] = [];
  lines.push(s.ok ? c('32', 'xennet: guest networking OK') : c('31', `xennet: ${s.problems.length} problem${s.problems.length === 1 ? '' : 's'}`));
  lines.push(`  firewall backend ${s.backend?.summary ?? 'unavailable'}; rule file ${s.rules.file} (${s.rules.state}); xenstore ${s.xenstore ?? 'not reachable'}`);
  if (s.daemon) lines.push(`  ${daemonLine(s.daemon)}`);
  if (s.read?.remembered) {
    const ago = Math.max(0, Math.round((Date.now() - Date.parse(s.read.at)) / 1000));
    lines.push(`  read by the daemon ${ago} s ago (${s.read.at}); nothing it reads has changed since, the drop counters are as of then (--fresh reads everything now)`);
  }
  lines.push(`  br_netfilter: ${Object.entries(s.bridgeNetfilter).map(([k, v]) => `${k.replace('net.bridge.', '')}=${v ?? 'missing'}`).join(' ')}`);
  lines.push('');
  lines.push('BRIDGE       STATE  MTU    UPLINK            NF-CALL(4/6)  PORTS');
  for (const b of s.bridges) {
    lines.push(`${b.name.padEnd(12)} ${(b.up ? 'up' : 'DOWN').padEnd(6)} ${String(b.mtu).padEnd(6)} ${(b.uplinks.join(',') || '-').padEnd(17)} ${`${b.nfCallIptables ? 'on' : 'off'}/${b.nfCallIp6tables ? 'on' : 'off'}`.padEnd(13)} ${b.ports.length}`);
  }
  lines.push('');
  lines.push('VIF          DOMAIN       POLICY             MAC                ADDRESSES                     MTU   LINK  BRIDGE    HOTPLUG    FIREWALL     DROPS');
  for (const v of s.vifs) {
    const fw = v.firewall === 'in-sync' ? c('32', v.firewall.padEnd(12)) : v.firewall === 'not-managed' ? v.firewall.padEnd(12) : c('31', v.firewall.padEnd(12));
    lines.push(
      `${v.name.padEnd(12)} ${(v.domain ? printable(v.domain) : '?').padEnd(12)} ${policyCell(v).padEnd(18)} ${(v.mac ?? '-').padEnd(18)} ${addressCell(v).padEnd(29)} ${String(v.mtu).padEnd(5)} ${(v.up ? 'up' : 'DOWN').padEnd(5)} ${v.bridge.padEnd(9)} ${(v.hotplugStatus ?? '-').padEnd(10)} ${fw} ${v.drops.packets}`,
    );
  }
  if (s.vifs.length === 0) lines.push('(no guest vifs)');
  const learning = s.vifs.filter((v) => v.learned.length > 0);
  if (learning.length > 0) {
    lines.push('', 'LEARNED      ADDRESS                                  HOW        ENDS');
    for (const v of learning) for (const b of v.learned) lines.push(`${v.name.padEnd(12)} ${b.address.padEnd(40)} ${b.how.padEnd(10)} ${b.expiresInSeconds === null ? 'with the vif' : `in ${duration(b.expiresInSeconds)}`}`);
  }
  if (s.problems.length > 0) {
    lines.push('', 'problems:');
    for (const p of s.problems) lines.push(c('31', `  ${p}`));
  }
  if (s.notes.length > 0) {
    lines.push('', 'notes:');
    for (const n of s.notes) lines.push(`  ${n}`);
  }
  return lines.join('\n');
}
