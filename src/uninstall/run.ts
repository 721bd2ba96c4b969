/**
 * `xennet uninstall`, the effects: reads the host into UninstallFacts, plans (./plan.ts), and
 * carries the steps out. The daemon is stopped first; then, under Xen's hotplug lock (so no hook
 * changes the firewall meanwhile), the host is read again and the rest of the plan done and
 * checked: nothing of xennet's is left in any table.
 */
import { learnedPath } from '../firewall/learning/state.js';
import { allDrivers } from '../firewall/drivers.js';
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runPaths } from '../daemon/paths.js';
import { clearAutostartOff, stopAutostart } from '../daemon/autostart.js';
import { diff, isEmptyTablePlan, render, type RulePlan } from '../firewall/diff.js';
import { installedBackend } from '../firewall/engine.js';
import { readLive } from '../firewall/host.js';
import { emptyRuleSet, tableNames, type TableName } from '../firewall/model.js';
import { NFT_TABLE } from '../firewall/nftables/table.js';
import type { Backend } from '../firewall/backend.js';
import { gatherHostFacts } from '../firewall/session.js';
import { dirOf } from '../firewall/store.js';
import { manifestPath, readManifest, removeManifest, sha256 } from '../hooks/install.js';
import { reasonOf, refused, XennetError } from '../sys/errors.js';
import { run } from '../sys/exec.js';
import { acquireHotplugLock } from '../sys/hotplug-lock.js';
import { silentLogger, type Logger } from '../sys/log.js';
import { originalFile, originalsDir, readOriginals, removeOriginals } from '../sys/originals.js';
import { commandOf, pidRunning, readPidFile, runsSubcommand, runsThisProgram } from '../sys/process.js';
import { stateDir } from '../sys/statefile.js';
import { readInterfaceSysctl, readSysctl, writeInterfaceSysctl, writeSysctl } from '../sys/sysctl.js';
import { ifindexOf } from '../sys/sysfs.js';
import { describeStep, guestText, planUninstall, type Step, type UninstallFacts, type UninstallPlan } from './plan.js';

export interface UninstallOptions {
  dryRun: boolean;
  force: boolean;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
}

export interface UninstallResult {
  dryRun: boolean;
  /** Nothing of xennet's was found. */
  nothingInstalled: boolean;
  steps: (Step & { text: string })[];
  notes: string[];
  unfiltered: UninstallFacts['guests'];
  stateDir: string;
}

/** How long a SIGTERMed daemon may take (the unit's TimeoutStopSec is 45 s). */
const DAEMON_STOP_MS = 50_000;

/** Whether systemd manages services here, and the daemon is the unit's (default run directory). */
function underSystemd(env: NodeJS.ProcessEnv): boolean {
  return existsSync('/run/systemd/system') && !env['XENNET_RUN_DIR'];
}

/** The daemon's pid from its pid file, when that process runs this program's `daemon`. */
function daemonPid(env: NodeJS.ProcessEnv): number | null {
  const pid = readPidFile(runPaths(env).pid);
  return pid !== undefined && pid !== process.pid && runsThisProgram(pid, 'daemon') ? pid : null;
}

async function systemctl(args: string[]): Promise<{ code: number; out: string }> {
  const r = await run('systemctl', args, { timeoutMs: 90_000 });
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

interface Gathered {
  facts: UninstallFacts;
  rules: RulePlan;
  backend: Backend;
}

async function gather(env: NodeJS.ProcessEnv, log: Logger): Promise<Gathered> {
  const systemd = underSystemd(env);
  const daemon: UninstallFacts['daemon'] = { systemd, unitActive: false, unitEnabled: false, pid: daemonPid(env) };
  const named = readPidFile(runPaths(env).pid);
  if (daemon.pid === null && named !== undefined && named !== process.pid && runsSubcommand(named, 'daemon')) daemon.other = { pid: named, command: commandOf(named) };
  if (systemd) {
    daemon.unitActive = (await systemctl(['is-active', '--quiet', 'xennet.service'])).code === 0;
    daemon.unitEnabled = (await systemctl(['is-enabled', '--quiet', 'xennet.service'])).code === 0;
  }

  // Every table, whichever backend is recorded: nothing of xennet's may stay in either.
  const backend = await installedBackend(env, log);
  const live = await readLive(backend);
  const rules = diff(live, emptyRuleSet());
  const firewall = tableNames.map((table) => {
    const p = rules[table];
    return { table, chains: [...p.remove], roots: p.removeRoots.map((r) => `${r.chain} ${r.rule}`), tables: (p.dropTables ?? []).map((f) => `${f} ${NFT_TABLE}`) };
  });

  const host = await gatherHostFacts(env);
  const guests = host.vifs.filter((v) => v.link.master !== null).map((v) => ({ vif: v.name, domain: v.domain ?? null, bridge: v.link.master! }));

  const { records } = readOriginals(env);
  const settings: UninstallFacts['settings'] = { sysctls: [], ports: [], bridges: [], recordsPresent: existsSync(originalsDir(env)) };
  const bridgesToRead: string[] = [];
  for (const r of records) {
    if (r.kind === 'sysctl') settings.sysctls.push({ key: r.key, original: r.value, current: readSysctl(r.key) });
    else if (r.kind === 'port') {
      const present = ifindexOf(r.port) === r.ifindex;
      settings.ports.push({
        port: r.port,
        present,
        values: Object.entries(r.values).map(([key, original]) => {
          const [family, name] = key.split('/') as ['ipv4' | 'ipv6', string];
          return { key, original, current: present && (family === 'ipv4' || family === 'ipv6') ? readInterfaceSysctl(family, r.port, name) : undefined };
        }),
      });
    } else {
      const present = ifindexOf(r.bridge) === r.ifindex;
      settings.bridges.push({ bridge: r.bridge, present, original: r.noLinkLocalLearn, current: undefined });
      if (present) bridgesToRead.push(r.bridge);
    }
  }
  if (bridgesToRead.length > 0) {
    const { NetlinkClient } = await import('../bridge/nl/client.js');
    const nl = new NetlinkClient();
    try {
      for (const b of settings.bridges) if (b.present) b.current = (await nl.getLink(b.bridge))?.bridge?.noLinkLocalLearn;
    } finally {
      nl.close();
    }
  }

  const manifest = readManifest(env);
  const files: UninstallFacts['files'] = Object.entries(manifest?.files ?? {}).map(([path, e]) => {
    let content: Buffer;
    try {
      // A link is never followed (nor removed as if it were the file install-hooks wrote).
      if (!lstatSync(path).isFile()) return { path, state: 'modified' as const };
      content = readFileSync(path);
    } catch {
      return { path, state: 'missing' as const };
    }
    return { path, state: sha256(content) === e.sha256 ? ('unchanged' as const) : ('modified' as const) };
  });

  let takeovers: string[] = [];
  try {
    takeovers = readdirSync(stateDir(env))
      .map((n) => /^takeover-(.+)\.json$/.exec(n)?.[1])
      .filter((b): b is string => b !== undefined)
      .sort();
  } catch {
    /* no state directory */
  }

  return {
    facts: {
      daemon,
      firewall,
      guests,
      settings,
      files,
      manifestPresent: existsSync(manifestPath(env)),
      firewallState: { path: dirOf(env), present: existsSync(dirOf(env)) },
      learnedRecord: { path: learnedPath(env), present: existsSync(learnedPath(env)) },
      stateDir: stateDir(env),
      takeovers,
    },
    rules,
    backend,
  };
}

function refusal(plan: UninstallPlan, extra = ''): XennetError {
  const r = plan.refused!;
  return refused(`${r.reason}${extra}:\n${r.guests.map((g) => `    ${guestText(g)} on ${g.bridge}`).join('\n')}`, 'shut those guests down first, or run `xennet uninstall --force` to remove the firewall anyway (they lose their firewall)');
}

async function stopDaemon(step: Extract<Step, { kind: 'stop-daemon' }>, env: NodeJS.ProcessEnv): Promise<void> {
  if (step.how === 'systemd') {
    const r = await systemctl(['stop', 'xennet.service']);
    if (r.code !== 0) throw new XennetError('exec', `systemctl stop xennet.service failed: ${r.out || `exit ${r.code}`}`);
  } else if (step.pid !== null && daemonPid(env) === step.pid) {
    try {
      process.kill(step.pid, 'SIGTERM');
    } catch {
      /* gone already */
    }
  }
  if (step.pid === null) return;
  const until = Date.now() + DAEMON_STOP_MS;
  while (pidRunning(step.pid)) {
    if (Date.now() > until) throw new XennetError('timeout', `the daemon (pid ${step.pid}) did not exit within ${DAEMON_STOP_MS / 1000} s of SIGTERM; nothing else was changed`, { hint: 'look at what it is doing (journalctl -u xennet), stop it, and run uninstall again' });
    await sleep(50);
  }
}

async function carryOut(step: Step, g: Gathered, env: NodeJS.ProcessEnv): Promise<void> {
  switch (step.kind) {
    case 'stop-daemon':
      return stopDaemon(step, env);
    case 'disable-unit': {
      const r = await systemctl(['disable', 'xennet.service']);
      if (r.code !== 0) throw new XennetError('exec', `systemctl disable xennet.service failed: ${r.out || `exit ${r.code}`}`);
      return;
    }
    case 'remove-firewall': {
      const text = render(g.rules[step.table], step.table);
      if (text !== '') await g.backend.restore(step.table, text);
      return;
    }
    case 'restore-sysctl':
      writeSysctl(step.key, step.to);
      return;
    case 'restore-port':
      for (const v of step.values) {
        const [family, key] = v.key.split('/') as ['ipv4' | 'ipv6', string];
        writeInterfaceSysctl(family, step.port, key, v.to);
      }
      return;
    case 'restore-bridge': {
      const { NetlinkClient } = await import('../bridge/nl/client.js');
      const nl = new NetlinkClient();
      try {
        await nl.setBridgeNoLinkLocalLearn(step.bridge, step.noLinkLocalLearn);
      } finally {
        nl.close();
      }
      return;
    }
    case 'remove-firewall-state':
      rmSync(step.path, { recursive: true, force: true });
      return;
    case 'remove-records':
      removeOriginals(env);
      return;
    case 'remove-file':
      rmSync(step.path, { force: true });
      return;
    case 'remove-manifest':
      removeManifest(env);
      return;
    case 'drop-empty-tables':
      for (const t of tableNames) await g.backend.dropEmptyTable(t);
      // Address learning's ipsets (xtables), now that no rule reads them.
      for (const d of allDrivers()) await d.sweepLearned?.(new Set());
      return;
    case 'daemon-reload': {
      const r = await systemctl(['daemon-reload']);
      if (r.code !== 0) throw new XennetError('exec', `systemctl daemon-reload failed: ${r.out || `exit ${r.code}`}`);
      return;
    }
  }
}

const withText = (s: Step): Step & { text: string } => ({ ...s, text: describeStep(s) });

export async function uninstall(o: UninstallOptions): Promise<UninstallResult> {
  const env = o.env ?? process.env;
  const log = o.log ?? silentLogger;
  const first = await gather(env, log);
  const plan = planUninstall(first.facts, { force: o.force });
  if (plan.refused) throw refusal(plan);
  const result = (p: UninstallPlan, done: Step[]): UninstallResult => ({
    dryRun: o.dryRun,
    nothingInstalled: done.length === 0,
    steps: done.map(withText),
    notes: p.notes,
    unfiltered: p.unfiltered,
    stateDir: first.facts.stateDir,
  });
  if (o.dryRun) return result(plan, plan.steps);
  // Hooks start no daemon from now on (a toolstack still pointed at vif-xennet runs it
  // in-process), and a start in progress is waited for: the host is looked at again after it, so
  // a daemon a hook started meanwhile is stopped too.
  const { wasSet } = await stopAutostart(env, 'set by xennet uninstall: hooks do not start a daemon');
  const settled = await gather(env, log);
  const planned = planUninstall(settled.facts, { force: o.force });
  if (planned.refused) {
    if (!wasSet) clearAutostartOff(env); // refused: nothing changed
    throw refusal(planned);
  }

  const done: Step[] = [];
  const fail = (s: Step, e: unknown): XennetError =>
    new XennetError(e instanceof XennetError ? e.code : 'exec', `uninstall stopped at "${describeStep(s)}": ${reasonOf(e)}${done.length > 0 ? ` (done before it: ${done.map(describeStep).join('; ')})` : ''}`, {
      hint: `fix the cause and run \`xennet uninstall\` again: it continues from what is left${recordOf(s, env)}`,
    });
  // 1. The daemon, before anything else: it repairs removed rules within a second.
  for (const s of planned.steps.filter((x) => x.kind === 'stop-daemon' || x.kind === 'disable-unit')) {
    try {
      await carryOut(s, settled, env);
    } catch (e) {
      throw fail(s, e);
    }
    done.push(s);
  }
  // 2. The rest under Xen's hotplug lock, from a fresh look (the daemon may have changed things
  // as it stopped): no hook changes the firewall meanwhile.
  const held = await acquireHotplugLock('iptables', { env });
  let now: UninstallPlan;
  try {
    const again = await gather(env, log);
    now = planUninstall(again.facts, { force: o.force });
    if (now.refused) throw refusal(now, done.length > 0 ? ' (the daemon was stopped; nothing else was changed)' : '');
    for (const s of now.steps.filter((x) => x.kind !== 'stop-daemon' && x.kind !== 'disable-unit')) {
      try {
        await carryOut(s, again, env);
      } catch (e) {
        throw fail(s, e);
      }
      done.push(s);
    }
    // Checked: nothing of xennet's is left in any table.
    const left = await readLive(again.backend);
    const rest = diff(left, emptyRuleSet());
    const still = tableNames.filter((t: TableName) => !isEmptyTablePlan(rest[t]));
    if (still.length > 0) throw new XennetError('internal', `after uninstall xennet's rules are still in ${still.join(', ')}`, { hint: 'another xennet may be running (a daemon outside systemd?); stop it and run uninstall again' });
  } finally {
    held.release();
  }
  return result(now, done);
}

/** For a restore that failed: the record it came from, which the operator may remove to leave that setting as it is. */
export function recordOf(s: Step, env: NodeJS.ProcessEnv): string {
  const file =
    s.kind === 'restore-sysctl' ? originalFile({ kind: 'sysctl', key: s.key }) : s.kind === 'restore-port' ? originalFile({ kind: 'port', port: s.port }) : s.kind === 'restore-bridge' ? originalFile({ kind: 'bridge', bridge: s.bridge }) : undefined;
  return file ? ` (the value comes from ${join(originalsDir(env), file)}: remove that file to leave the setting as it is)` : '';
}

/** The text a person sees. */
export function renderUninstall(r: UninstallResult): string {
  const lines: string[] = [];
  if (r.nothingInstalled) {
    lines.push('nothing of xennet\'s is installed on this host; nothing to do');
  } else {
    lines.push(r.dryRun ? 'xennet uninstall would (dry run: nothing was changed):' : 'xennet uninstall:');
    for (const s of r.steps) lines.push(`  ${r.dryRun ? '' : 'done: '}${s.text}`);
  }
  for (const n of r.notes) lines.push(`  note: ${n}`);
  if (!r.dryRun && !r.nothingInstalled) lines.push(`xennet is uninstalled. Kept: the state directory ${r.stateDir} (takeover journals; \`apt purge\` or rm -r removes it) and the rule file.`);
  return lines.join('\n');
}
