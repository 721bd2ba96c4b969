/**
 * `xennet uninstall`, the planning half (pure): from what was found on the host (the daemon, the
 * firewall's chains and tables, the settings xennet changed and what they were before, the files
 * install-hooks wrote, the state files), the steps that take xennet off it, in order, or a
 * refusal. The effects are in ./run.ts.
 *
 * Order: the daemon stops first (it would put removed rules back within a second); then, under
 * Xen's hotplug lock, the firewall goes, the settings are restored, the firewall's state and the
 * records go, and the files install-hooks wrote; the unit goes from systemd's view last.
 */
import { isXtables, type TableName } from '../firewall/model.js';

export interface FirewallTableFacts {
  table: TableName;
  /** xennet's chains (xtables) or, on nftables, its chains and tables to delete. */
  chains: string[];
  /** Root jumps into them in built-in chains (`CHAIN rule`). */
  roots: string[];
  /** nftables: xennet's tables (`bridge xennet`, `inet xennet`). */
  tables: string[];
}

export interface SettingFacts {
  sysctls: { key: string; original: string; current: string | undefined }[];
  /** Ports with a record: `present` when a link of that name with the recorded ifindex exists. */
  ports: { port: string; present: boolean; values: { key: string; original: string; current: string | undefined }[] }[];
  bridges: { bridge: string; present: boolean; original: boolean; current: boolean | undefined }[];
  /** Whether the records directory exists (with records, stale ones or leftovers). */
  recordsPresent: boolean;
}

export interface UninstallFacts {
  daemon: {
    /** /run/systemd/system exists and the run directory is the default one (the unit's daemon). */
    systemd: boolean;
    unitActive: boolean;
    unitEnabled: boolean;
    /** The pid in the pid file, when that process runs and is a xennet daemon. */
    pid: number | null;
    /** A live `daemon` the pid file names that is not this program's (another installation): not stopped, named. */
    other?: { pid: number; command: string };
  };
  firewall: FirewallTableFacts[];
  /** Guest interfaces attached to a bridge now. */
  guests: { vif: string; domain: string | null; bridge: string }[];
  settings: SettingFacts;
  /** install-hooks' manifest entries. */
  files: { path: string; state: 'unchanged' | 'modified' | 'missing' }[];
  manifestPresent: boolean;
  /** <state>/firewall (index, per-vif records, staged changes). */
  firewallState: { path: string; present: boolean };
  /** <state>/learned.json: address learning's record of bindings. */
  learnedRecord?: { path: string; present: boolean };
  stateDir: string;
  /** Bridges with an active takeover journal. */
  takeovers: string[];
}

export type Step =
  | { kind: 'stop-daemon'; how: 'systemd' | 'signal'; pid: number | null }
  | { kind: 'disable-unit' }
  | { kind: 'remove-firewall'; table: TableName; chains: string[]; roots: string[]; tables: string[] }
  | { kind: 'restore-sysctl'; key: string; from: string | undefined; to: string }
  | { kind: 'restore-port'; port: string; values: { key: string; from: string | undefined; to: string }[] }
  | { kind: 'restore-bridge'; bridge: string; noLinkLocalLearn: boolean }
  | { kind: 'remove-firewall-state'; path: string }
  | { kind: 'remove-records'; path: string }
  | { kind: 'remove-file'; path: string }
  | { kind: 'remove-manifest' }
  | { kind: 'daemon-reload' }
  /** iptables/ebtables tables left with nothing in them (nf_tables variant): deleted, as before xennet made them. */
  | { kind: 'drop-empty-tables' };

export interface UninstallPlan {
  /** Set when uninstall must not proceed (nothing is done). */
  refused?: { reason: string; guests: UninstallFacts['guests'] };
  steps: Step[];
  /** Said, not done: files left, ports gone, takeovers, guests now unfiltered. */
  notes: string[];
  /** Guests that are unfiltered once the firewall is gone. */
  unfiltered: UninstallFacts['guests'];
}

const TABLE_LABEL: Record<TableName, string> = {
  ipv4: 'iptables filter',
  ipv6: 'ip6tables filter',
  ipv4raw: 'iptables raw',
  ipv6raw: 'ip6tables raw',
  eb: 'ebtables filter',
  ebnat: 'ebtables nat',
  nftables: 'nftables',
};

export function planUninstall(f: UninstallFacts, options: { force: boolean }): UninstallPlan {
  const steps: Step[] = [];
  const notes: string[] = [];
  const firewall = f.firewall.filter((t) => t.chains.length + t.roots.length + t.tables.length > 0);
  const unfiltered = firewall.length > 0 ? f.guests : [];
  if (unfiltered.length > 0 && !options.force) {
    return {
      refused: { reason: `${unfiltered.length} guest interface${unfiltered.length === 1 ? ' is' : 's are'} attached; removing the firewall would leave ${unfiltered.length === 1 ? 'it' : 'them'} unfiltered`, guests: unfiltered },
      steps: [],
      notes: [],
      unfiltered: [],
    };
  }

  if (f.daemon.systemd) {
    if (f.daemon.unitActive) steps.push({ kind: 'stop-daemon', how: 'systemd', pid: f.daemon.pid });
    if (f.daemon.unitEnabled) steps.push({ kind: 'disable-unit' });
  }
  // A daemon the unit does not run (started by hand), or no systemd: SIGTERM, then wait.
  if (f.daemon.pid !== null && !(f.daemon.systemd && f.daemon.unitActive)) steps.push({ kind: 'stop-daemon', how: 'signal', pid: f.daemon.pid });

  for (const t of firewall) steps.push({ kind: 'remove-firewall', table: t.table, chains: t.chains, roots: t.roots, tables: t.tables });
  // The tables xennet's chains were in, now empty (or emptied already, when the last guest went
  // offline): while xennet's firewall state says it managed this host's firewall.
  if (firewall.some((t) => isXtables(t.table)) || f.firewallState.present) steps.push({ kind: 'drop-empty-tables' });

  for (const s of f.settings.sysctls) if (s.current !== undefined && s.current !== s.original) steps.push({ kind: 'restore-sysctl', key: s.key, from: s.current, to: s.original });
  for (const p of f.settings.ports) {
    if (!p.present) continue; // gone with its guest: the next link of that name starts from the defaults
    const values = p.values.filter((v) => v.current !== undefined && v.current !== v.original).map((v) => ({ key: v.key, from: v.current, to: v.original }));
    if (values.length > 0) steps.push({ kind: 'restore-port', port: p.port, values });
  }
  for (const b of f.settings.bridges) if (b.present && b.current !== undefined && b.current !== b.original) steps.push({ kind: 'restore-bridge', bridge: b.bridge, noLinkLocalLearn: b.original });

  if (f.firewallState.present) steps.push({ kind: 'remove-firewall-state', path: f.firewallState.path });
  if (f.settings.recordsPresent) steps.push({ kind: 'remove-records', path: `${f.stateDir}/originals` });
  // The learned bindings belong to the firewall that is gone (a later install starts with none).
  if (f.learnedRecord?.present) steps.push({ kind: 'remove-file', path: f.learnedRecord.path });

  let unitRemoved = false;
  for (const file of f.files) {
    if (file.state === 'unchanged') {
      steps.push({ kind: 'remove-file', path: file.path });
      if (file.path.endsWith('.service')) unitRemoved = true;
    } else if (file.state === 'modified') {
      notes.push(`left ${file.path}: it was modified after xennet wrote it (remove it yourself if it is no longer wanted)`);
    }
  }
  if (f.manifestPresent) steps.push({ kind: 'remove-manifest' });
  if (unitRemoved && f.daemon.systemd) steps.push({ kind: 'daemon-reload' });

  if (unfiltered.length > 0) notes.push(`${unfiltered.length} guest interface${unfiltered.length === 1 ? ' is' : 's are'} now unfiltered: ${unfiltered.map(guestText).join(', ')}`);
  if (!f.settings.recordsPresent && (firewall.length > 0 || f.firewallState.present)) {
    notes.push('no record of the settings xennet changed (records lost, e.g. a purge and a reinstall): the br_netfilter sysctls, guest ports\' settings and bridges\' no_linklocal_learn are left as they are');
  }
  if (f.daemon.other) notes.push(`the pid file names pid ${f.daemon.other.pid} (${f.daemon.other.command}), a daemon of another program or another xennet installation: it is not stopped; stop it yourself, or it may put xennet's firewall back`);
  for (const b of f.takeovers) notes.push(`the takeover of bridge ${b} stays (running guests depend on it); \`xennet bridge stop --bridge ${b}\` undoes it`);
  return { steps, notes, unfiltered };
}

export const guestText = (g: { vif: string; domain: string | null }): string => `${g.vif} (${g.domain ?? 'domain unknown'})`;

/** One line per step, as a person reads it (`dryRun`: what would be done). */
export function describeStep(s: Step): string {
  switch (s.kind) {
    case 'stop-daemon':
      return s.how === 'systemd' ? 'stop the daemon: systemctl stop xennet.service' : `stop the daemon: SIGTERM to pid ${s.pid ?? '?'} and wait for it to exit`;
    case 'disable-unit':
      return 'disable the unit: systemctl disable xennet.service';
    case 'remove-firewall': {
      const parts: string[] = [];
      if (s.tables.length > 0) parts.push(`table${s.tables.length === 1 ? '' : 's'} ${s.tables.join(', ')}`);
      if (s.chains.length > 0 && s.tables.length === 0) parts.push(`${s.chains.length} chain${s.chains.length === 1 ? '' : 's'} (${s.chains.join(', ')})`);
      if (s.roots.length > 0) parts.push(`${s.roots.length} jump${s.roots.length === 1 ? '' : 's'} (${s.roots.join('; ')})`);
      return `remove from ${TABLE_LABEL[s.table]}: ${parts.join(' and ')}`;
    }
    case 'restore-sysctl':
      return `restore ${s.key}: ${s.from ?? '(absent)'} -> ${s.to}`;
    case 'restore-port':
      return `restore ${s.port}: ${s.values.map((v) => `${v.key} ${v.from ?? '(absent)'} -> ${v.to}`).join(', ')}`;
    case 'restore-bridge':
      return `restore bridge ${s.bridge}: no_linklocal_learn ${s.noLinkLocalLearn ? 'off -> on' : 'on -> off'}`;
    case 'remove-firewall-state':
      return `remove the firewall's state ${s.path} (index, per-guest records, staged changes)`;
    case 'remove-records':
      return `remove the records of original settings ${s.path}`;
    case 'remove-file':
      return `remove ${s.path}`;
    case 'remove-manifest':
      return 'remove the list of files install-hooks wrote';
    case 'daemon-reload':
      return 'systemctl daemon-reload';
    case 'drop-empty-tables':
      return 'delete the iptables, ip6tables and ebtables tables left empty (built-in chains only, policy ACCEPT, no rules; nf_tables variant), as they were before xennet made them, and the ipsets of address learning (xn4-/xn6-<vif>)';
  }
}
