/** `xennet status GUEST` on a terminal: the guest's policy, interfaces, firewall, hook calls and pending changes. */
import { printable } from '../net/index.js';
import { dropsText } from '../firewall/drop-reasons.js';
import type { GuestView } from './guest-view.js';
import { renderTable, type TableCell } from './table.js';

const one = (text: string, paint?: (t: string) => string): TableCell => ({ items: [text], ...(paint ? { paint } : {}) });

/** "12 s ago" from an ISO time (now: `now` ms). */
function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return iso;
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export function renderGuestView(v: GuestView, color: boolean, width = 80, now = Date.now()): string {
  const c = (code: string, t: string): string => (color ? `\x1b[${code}m${t}\x1b[0m` : t);
  const green = (t: string): string => c('32', t);
  const red = (t: string): string => c('31', t);
  const lines: string[] = [];
  const who = `${v.domain ? printable(v.domain) : 'domain unknown'}${v.domid !== null ? ` (domain ${v.domid})` : ''}`;
  lines.push(v.ok ? green(`${who}: OK`) : red(`${who}: ${v.problems.length} problem${v.problems.length === 1 ? '' : 's'}`));
  lines.push(`  firewall backend ${v.backend?.summary ?? 'unavailable'}; ${v.daemon ? (v.daemon.running ? `daemon running (pid ${v.daemon.pid})` : 'no daemon (hooks run in-process)') : 'daemon not asked'}`);
  if (v.read?.remembered) lines.push(`  read by the daemon ${ago(v.read.at, now)}; nothing it reads has changed since (--fresh reads everything now)`);

  // The policy, setting by setting, with where each comes from.
  lines.push('');
  if ('error' in v.policy) {
    lines.push(red(`policy: cannot be explained: ${v.policy.error}`));
  } else {
    const p = v.policy;
    const whose = p.guest !== undefined ? `the rule file's guest ${printable(p.guest)}${p.line !== undefined ? ` (${p.file} line ${p.line})` : ` (${p.file})`}` : p.state === 'absent' ? `xennet's built-in defaults (no rule file at ${p.file})` : `the defaults (${p.file} names no guest ${v.vifs[0]?.policyName ? printable(v.vifs[0].policyName) : 'for it'})`;
    lines.push(`policy: ${whose}${p.state === 'kept' ? '; the file cannot be used now, this is the last good policy, still in force' : ''}`);
    const found = v.vifs[0]?.policySource;
    if (found && found !== 'name') lines.push(`  found by ${found === 'incoming' ? "the name it will have once its live migration is over (xl's <name>--incoming)" : found === 'migratedaway' ? 'the name it had before it migrated away' : "its stub domain's target"}`);
    lines.push(...renderTable([{ header: 'SETTING' }, { header: 'VALUE', give: 'stack' }, { header: 'FROM', secondary: 1 }], p.settings.map((s) => [one(s.setting), { items: s.value.split(', ').map((x, i, all) => (i < all.length - 1 ? `${x},` : x)) }, one(s.from)]), width));
  }

  // Its interfaces: link, addresses, firewall, drops.
  for (const x of v.vifs) {
    lines.push('');
    lines.push(`${x.name}: bridge ${x.bridge}, ${x.up ? 'up' : red('DOWN')}, mtu ${x.mtu}, MAC ${x.mac ?? 'unknown'}, hotplug-status ${x.hotplugStatus ?? 'missing'}`);
    const addresses = x.addressSource === 'learned' ? `learned: ${x.learned.length > 0 ? x.learned.map((b) => `${b.address} (${b.how}, ${b.expiresInSeconds === null ? 'until offline' : `ends in ${b.expiresInSeconds} s`})`).join(', ') : 'none yet: it may send only what gets it an address'}` : x.addressSource === 'open' ? 'open (learn_addresses: false): it may send from any address' : x.addressSource === 'none' ? `${x.addresses.join(', ') || 'none'}: not checked, it may send from any address` : x.addresses.join(', ');
    lines.push(`  addresses: ${addresses}`);
    const state = x.firewall === 'in-sync' ? (v.ok ? green('in place and in sync') : 'its own rules in place and in sync (see the problems below: they may keep its traffic from reaching them)') : x.firewall === 'not-managed' ? "not managed (xennet's firewall is not installed)" : red(x.firewall === 'missing' ? 'MISSING: its rules are not in the kernel' : 'DRIFTED: its rules in the kernel differ from what xennet installed');
    lines.push(`  firewall: ${state}`);
    const why = dropsText(x.drops.reasons ?? {});
    lines.push(`  dropped: ${x.drops.packets} packet${x.drops.packets === 1 ? '' : 's'} (${x.drops.bytes} bytes) by its rules${why ? ` (${why})` : ''}; ${x.claims.dropped.packets} frame${x.claims.dropped.packets === 1 ? '' : 's'} from other ports carrying its identity`);
  }

  // Its hook calls.
  lines.push('');
  if (v.hooks.length === 0) lines.push('hook calls: none recorded');
  else {
    lines.push('hook calls (oldest first):');
    lines.push(
      ...renderTable(
        [{ header: 'WHEN' }, { header: 'VIF', secondary: 2 }, { header: 'CALL' }, { header: 'VIA', secondary: 1 }, { header: 'TOOK' }, { header: 'RESULT' }],
        v.hooks.map((h) => [one(printable(ago(h.at, now))), one(printable(h.vif)), one(printable(h.command)), one(h.via), one(`${h.ms} ms`), one(h.ok ? 'ok' : 'FAILED', h.ok ? undefined : red)]),
        width,
      ),
    );
    // Why the failed ones failed, in full (the terminal wraps them).
    for (const h of v.hooks.filter((x) => !x.ok)) lines.push(red(`  ${printable(h.command)} ${printable(ago(h.at, now))} failed: ${printable(h.message)}`));
  }

  // What apply would change for it.
  lines.push('');
  if ('error' in v.plan) lines.push(`plan: not known (${v.plan.error})`);
  else if (v.plan.changes.length === 0) lines.push('plan: nothing to change for this guest');
  else {
    const added = v.plan.changes.reduce((n, ch) => n + ch.added.length, 0);
    const removed = v.plan.changes.reduce((n, ch) => n + ch.removed.length, 0);
    lines.push(`plan: ${added} rule${added === 1 ? '' : 's'} to add, ${removed} to remove (\`xennet apply\` makes them)`);
    for (const w of v.plan.widenings) lines.push(c('1;33', `  widening: ${w.changes.join('; ')}`));
    for (const ch of v.plan.changes) {
      for (const a of ch.added) lines.push(green(`  + ${ch.table.padEnd(4)} ${ch.chain}: ${a}`));
      for (const d of ch.removed) lines.push(red(`  - ${ch.table.padEnd(4)} ${ch.chain}: ${d}`));
    }
  }
  if (v.problems.length > 0) {
    lines.push('', 'problems:');
    for (const p of v.problems) lines.push(red(`  ${p}`));
  }
  if (v.notes.length > 0) {
    lines.push('', 'notes:');
    for (const n of v.notes) lines.push(`  ${n}`);
  }
  return lines.join('\n');
}
