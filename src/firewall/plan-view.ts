/** Human rendering of a plan: per vif what would be added and removed, then shared changes and warnings. */
import type { PlanResult } from './cli-plan.js';

export function renderPlanView(r: PlanResult, options: { apply: boolean; color: boolean }): string {
  const c = (code: string, s: string): string => (options.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const lines: string[] = [];
  const where = r.mode === 'offline' ? 'offline (nothing live is read)' : `backend ${r.backend?.summary ?? 'unavailable'}`;
  lines.push(`${options.apply ? 'apply' : 'plan'}: ${r.vifs.length} vif${r.vifs.length === 1 ? '' : 's'}, rules ${r.rules.file}${r.rules.exists ? '' : ' (absent: defaults)'}, ${where}`);
  if (r.asOf !== undefined) lines.push(`  planned by the daemon at ${r.asOf}: nothing to change then, and nothing it reads has changed since`);
  // First, where a reviewer cannot miss it: what the change opens up.
  for (const w of r.widenings ?? []) lines.push(c('1;33', `widening: ${w.domain ?? 'domain unknown'} (${w.vif}): ${w.changes.join('; ')}`));
  if (r.bridgeNetfilter) lines.push(`  bridged traffic to iptables: ${Object.entries(r.bridgeNetfilter).map(([k, v]) => `${k.replace('net.bridge.', '')}=${v ?? 'missing'}`).join(' ')}`);
  const byVif = new Map<string, typeof r.changes>();
  for (const ch of r.changes) byVif.set(ch.vif, [...(byVif.get(ch.vif) ?? []), ch]);
  for (const v of r.vifs) {
    const ch = byVif.get(v.name) ?? [];
    const added = ch.reduce((n, x) => n + x.added.length, 0);
    const removed = ch.reduce((n, x) => n + x.removed.length, 0);
    const label = `${v.name} (${v.domain ?? 'domain unknown'}${v.policySource ? `, ${v.policySource}` : ''}${v.guest ? ', rule file guest' : ''}${v.addresses.length > 0 ? `, ${v.addresses.join(' ')}` : ''})`;
    lines.push('');
    lines.push(ch.length === 0 ? `${label}: in sync` : `${label}: ${added} rule${added === 1 ? '' : 's'} to add, ${removed} to remove`);
    for (const x of ch) {
      for (const a of x.added) lines.push(c('32', `  + ${x.table.padEnd(4)} ${x.chain}: ${a}`));
      for (const d of x.removed) lines.push(c('31', `  - ${x.table.padEnd(4)} ${x.chain}: ${d}`));
    }
  }
  const gone = [...byVif.keys()].filter((k) => k !== '(shared)' && !r.vifs.some((v) => v.name === k));
  for (const k of gone) {
    const ch = byVif.get(k)!;
    lines.push('', `${k} (no longer live): ${ch.reduce((n, x) => n + x.removed.length, 0)} rules to remove`);
    for (const x of ch) for (const d of x.removed) lines.push(c('31', `  - ${x.table.padEnd(4)} ${x.chain}: ${d}`));
  }
  const shared = byVif.get('(shared)') ?? [];
  if (shared.length > 0) {
    const chains = new Set(shared.map((x) => `${x.table} ${x.chain}`)).size;
    lines.push('', `shared dispatch chains and jumps: ${chains} to change`);
    for (const x of shared) {
      // Each chain by name; the rules of the host's own chains (FORWARD, INPUT) one by one.
      lines.push(`  ${x.table.padEnd(4)} ${x.chain}: ${x.added.length} to add, ${x.removed.length} to remove`);
      if (x.chain !== 'FORWARD' && x.chain !== 'INPUT') continue;
      for (const a of x.added) lines.push(c('32', `  + ${x.table.padEnd(4)} ${x.chain}: ${a}`));
      for (const d of x.removed) lines.push(c('31', `  - ${x.table.padEnd(4)} ${x.chain}: ${d}`));
    }
  }
  if (r.warnings.length > 0) {
    lines.push('', 'warnings:');
    for (const w of r.warnings) lines.push(c('33', `  ${w}`));
  }
  lines.push('');
  if (options.apply) lines.push(r.applied && r.applied.tables.length > 0 ? `applied (${r.applied.tables.join(', ')}); the live rules now match the rule file` : 'nothing to change; the live rules match the rule file');
  else lines.push(r.pending ? 'changes pending: `xennet apply` makes them' : 'nothing to do: the live rules match the rule file');
  return lines.join('\n');
}
