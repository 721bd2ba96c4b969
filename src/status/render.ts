/**
 * `xennet status` on a terminal: one screen for the operator. Only types of host-status.ts: the
 * CLI that gets its status from the daemon loads this, not the code that reads the host.
 */
import type { PolicyNameSource } from '../firewall/domain-identity.js';
import { printable } from '../net/index.js';
import type { HostStatus, VifStatus } from './host-status.js';
import { renderTable, type TableCell, type TableColumn } from './table.js';

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

/** The ADDRESSES cell's items: declared addresses, `learned: ...`, or `- (any)` for a guest with no protection. */
function addressItems(v: VifStatus): string[] {
  if (v.addressSource === 'learned') {
    const [first, ...rest] = v.learned.map((b) => b.address);
    return [`learned: ${first ?? 'none yet'}`, ...rest];
  }
  if (v.addressSource === 'none') return v.addresses.length > 0 ? [...v.addresses.slice(0, -1), `${v.addresses[v.addresses.length - 1]!} (unchecked)`] : ['- (any)'];
  if (v.addressSource === 'open') return ['- (open)'];
  return v.addresses.length > 0 ? v.addresses : ['-'];
}

/** The guests' table: what gives way first on a narrow terminal is what an operator needs least. */
const VIF_COLUMNS: TableColumn[] = [
  { header: 'VIF' },
  { header: 'DOMAIN', give: 'elide' },
  { header: 'POLICY', give: 'elide', secondary: 5 },
  { header: 'MAC', secondary: 3 },
  { header: 'ADDRESSES', give: 'stack' },
  { header: 'MTU', secondary: 1 },
  { header: 'LINK', secondary: 1 },
  { header: 'BRIDGE', secondary: 2 },
  { header: 'HOTPLUG', secondary: 4 },
  { header: 'FIREWALL' },
  { header: 'DROPS', secondary: 6 },
];

/**
 * The guests' table, remembered per list of guests (the daemon answers one remembered status again
 * and again: 1000 rows cost 10-20 ms to lay out). A status is never changed once made.
 */
const vifTables = new WeakMap<readonly VifStatus[], Map<string, string[]>>();

function vifTable(vifs: readonly VifStatus[], color: boolean, width: number): string[] {
  let byForm = vifTables.get(vifs);
  if (!byForm) vifTables.set(vifs, (byForm = new Map()));
  const form = `${color} ${width}`;
  const known = byForm.get(form);
  if (known) return known;
  const one = (text: string, paint?: (t: string) => string): TableCell => ({ items: [text], ...(paint ? { paint } : {}) });
  const green = (t: string): string => (color ? `\x1b[32m${t}\x1b[0m` : t);
  const red = (t: string): string => (color ? `\x1b[31m${t}\x1b[0m` : t);
  const lines = renderTable(
    VIF_COLUMNS,
    vifs.map((v) => [
      one(v.name),
      one(v.domain ? printable(v.domain) : '?'),
      one(policyCell(v)),
      one(v.mac ?? '-'),
      { items: addressItems(v) },
      one(String(v.mtu)),
      one(v.up ? 'up' : 'DOWN'),
      one(v.bridge),
      one(v.hotplugStatus ?? '-'),
      one(v.firewall, v.firewall === 'in-sync' ? green : v.firewall === 'not-managed' ? undefined : red),
      one(String(v.drops.packets)),
    ]),
    width,
  );
  byForm.set(form, lines);
  return lines;
}

/** The status screen; its tables fit `width` columns. */
export function renderHostStatus(s: HostStatus, color: boolean, width = 80): string {
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
  const one = (text: string, paint?: (t: string) => string): TableCell => ({ items: [text], ...(paint ? { paint } : {}) });
  lines.push(
    ...renderTable(
      [{ header: 'BRIDGE' }, { header: 'STATE' }, { header: 'MTU' }, { header: 'UPLINK', give: 'elide' }, { header: 'NF-CALL(4/6)' }, { header: 'PORTS' }],
      s.bridges.map((b) => [one(printable(b.name)), one(b.up ? 'up' : 'DOWN'), one(String(b.mtu)), one(b.uplinks.map(printable).join(',') || '-'), one(`${b.nfCallIptables ? 'on' : 'off'}/${b.nfCallIp6tables ? 'on' : 'off'}`), one(String(b.ports.length))]),
      width,
    ),
  );
  lines.push('');
  lines.push(...vifTable(s.vifs, color, width));
  if (s.vifs.length === 0) lines.push('(no guest vifs)');
  const learning = s.vifs.filter((v) => v.learned.length > 0);
  if (learning.length > 0) {
    lines.push('');
    lines.push(
      ...renderTable(
        [{ header: 'LEARNED' }, { header: 'ADDRESS' }, { header: 'HOW' }, { header: 'ENDS' }],
        learning.flatMap((v) => v.learned.map((b) => [one(v.name), one(b.address), one(b.how), one(b.expiresInSeconds === null ? 'with the vif' : `in ${duration(b.expiresInSeconds)}`)])),
        width,
      ),
    );
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
