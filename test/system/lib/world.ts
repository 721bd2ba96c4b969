/**
 * xennet as an administrator installs it, on a simulated Xen host inside the suite's private mount
 * namespace: the Debian package with `dpkg -i`, the rule file at
 * /etc/xen/xennet.yaml, the in-memory xenstored on the default socket, dom0 taken over by the
 * installed `xennet bridge start`, and vif-scripts called with exactly libxl's argv and
 * environment. Nothing of xennet's is overridden: no XENNET_*, no XENSTORED_*.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { operatorPath, SimHost, type GuestSpec, type SimGuest, type ToolstackForm } from '../../../src/sim/host.js';
import type { SimNetns } from '../../../src/sim/netns.js';
import type { BuiltDeb } from '../../../src/package/build-deb.js';
import { run, type ExecResult } from '../../../src/sys/exec.js';
import { LOCK_DIR, RULES_FILE, STATE_DIR, XEN_SCRIPTS, XENSTORED_SOCKET, theMachine } from './machine.js';
import { ended, killAll, killTree, spawnTracked, type Finished } from './proc.js';

export const root = fileURLToPath(new URL('../../../../', import.meta.url));
export const VIF_XENNET = `${XEN_SCRIPTS}/vif-xennet`;
export const VIF_BRIDGE = `${XEN_SCRIPTS}/vif-bridge`;

/** The rule file of the suite: anti-spoofing for every guest, from xenstore's mac and ip. */
export const RULES = `# /etc/xen/xennet.yaml of the system suite
version: 1
defaults:
  antispoof: true
  inbound: accept
  outbound: accept
`;

/** Where the Debian package puts xennet. */
export const xennetBin = (): string => (theMachine(), '/usr/bin/xennet');
export const installedPackage = (): string => (theMachine(), '/usr/lib/xennet');
export const DAEMON_UNIT_FILE = '/lib/systemd/system/xennet.service';
export const BRIDGE_UNIT_FILE = '/lib/systemd/system/xennet-bridge.service';

async function must(what: string, r: Promise<ExecResult>): Promise<string> {
  const x = await r;
  if (x.code !== 0) throw new Error(`${what} exited ${x.code}${x.signal ? ` (${x.signal})` : ''}: ${(x.stderr || x.stdout).trim()}`);
  return x.stdout;
}

let installation: Promise<BuiltDeb> | undefined;

/**
 * What the suite's machine changed, as path -> state: every file (not directory) in the overlays'
 * upper layers and in /etc/xen, plus, in the merged view, every path of `watched` and its parent
 * directories (an overlay copies a directory up when something is created in it, so directories
 * are compared by what the merged view shows, not by the upper layer).
 */
export function changedFiles(watched: readonly string[] = []): Map<string, string> {
  const out = new Map<string, string>();
  const state = (p: string): string => {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return '(absent)';
    }
    if (st.isDirectory()) return `dir ${(st.mode & 0o7777).toString(8)}${readdirSync(p).length === 0 ? ' empty' : ''}`;
    if (st.isSymbolicLink()) return `-> ${readlinkSync(p)}`;
    if (st.isFile()) return `${(st.mode & 0o7777).toString(8)} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
    return `special ${st.mode.toString(8)} ${st.rdev}`; // an overlay whiteout: a file removed
  };
  const walk = (dir: string, shown: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names.sort()) {
      const p = join(dir, n);
      if (lstatSync(p).isDirectory()) walk(p, `${shown}/${n}`);
      else out.set(`${shown}/${n}`, state(p));
    }
  };
  const { overlays } = theMachine();
  walk(join(overlays, 'etc', 'upper'), '/etc');
  walk(join(overlays, 'usr', 'upper'), '/usr');
  walk(join(overlays, 'var-lib', 'upper'), '/var/lib');
  walk('/etc/xen', '/etc/xen(tmpfs)');
  for (const w of watched) for (let p = w; p !== '/' && p !== '.'; p = dirname(p)) if (!out.has(`merged:${p}`)) out.set(`merged:${p}`, state(p));
  return out;
}

/** The paths the package and its maintainer scripts touch: its files, the unit enablement state, its state directory. */
export async function packagePaths(deb: string): Promise<string[]> {
  const list = await must('dpkg-deb -c', run('dpkg-deb', ['-c', deb]));
  const paths = list.split('\n').filter((l) => l.trim() !== '').map((l) => l.replace(/ -> .*$/, '').split(/\s+/).slice(5).join(' ').replace(/^\./, '').replace(/\/$/, '')).filter((p) => p !== '');
  return [...paths, '/etc/systemd/system/multi-user.target.wants/xennet.service', '/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/xennet.service', '/var/lib/systemd/deb-systemd-helper-enabled/xennet.service.dsh-also', '/var/lib/xennet'];
}

/** What the suite's machine looked like just before `dpkg -i` (changedFiles()). */
export let filesBeforeInstall: Map<string, string> | undefined;

/**
 * Installs xennet like an administrator, once per run: the Debian package built from this tree
 * (`npm run deb`'s builder), `dpkg -i`, and the rule file. No systemd runs here, so the package's
 * postinst enables xennet.service (deb-systemd-helper) but starts nothing.
 */
export function ensureInstalled(): Promise<BuiltDeb> {
  installation ??= (async () => {
    theMachine();
    if (!existsSync(join(root, 'dist/src/package/build-deb.js'))) throw new Error('dist/ is not built: run `npm run build` first');
    const { buildDeb } = (await import(join(root, 'dist/src/package/build-deb.js'))) as typeof import('../../../src/package/build-deb.js');
    const deb = await buildDeb(mkdtempSync(join(tmpdir(), 'xnt-deb-')));
    filesBeforeInstall = changedFiles(await packagePaths(deb.file));
    await must('dpkg -i', run('dpkg', ['-i', deb.file], { env: operatorEnv(), timeoutMs: 120_000 }));
    writeFileSync(RULES_FILE, RULES);
    return deb;
  })();
  return installation;
}

/** The environment an operator's shell gives xennet: PATH and HOME, nothing of xennet's. */
export function operatorEnv(): NodeJS.ProcessEnv {
  return { PATH: operatorPath(), HOME: process.env['HOME'] || '/root' };
}

/** A fresh machine state, as after a reboot: no state directory, no hotplug locks. */
async function resetMachineState(): Promise<void> {
  await run('umount', ['-l', STATE_DIR]); // a test's read-only tmpfs, if one is left
  rmSync(STATE_DIR, { recursive: true, force: true });
  rmSync(LOCK_DIR, { recursive: true, force: true });
}

let current: SimHost | undefined;

/**
 * A simulated Xen host with xennet as installed: dom0 taken over by the installed `xennet bridge
 * start`, unless `takeover: false` (dom0's eth0 is then still the NIC).
 */
export async function installedHost(options: { takeover?: boolean; autostart?: boolean } = {}): Promise<SimHost> {
  await ensureInstalled();
  if (current) throw new Error(`host ${current.id} is still up: one host at a time (they share the default xenstored socket)`);
  await resetMachineState();
  // Hooks without a daemon run in-process unless a test asks for the default (autostart).
  const host = await SimHost.create({ prefix: 'xnt', installed: { xenstoreSocket: XENSTORED_SOCKET, xennetBin: xennetBin() }, autostart: options.autostart ?? false });
  current = host;
  try {
    if (options.takeover ?? true) await host.takeover();
  } catch (e) {
    await teardown(host);
    throw e;
  }
  return host;
}

/** Kills what the suite still runs, every process left in the host's namespaces, then deletes them. */
export async function teardown(host: SimHost | undefined): Promise<void> {
  await killAll();
  if (!host) return;
  for (const ns of host.namespaces) {
    const pids = await run('ip', ['netns', 'pids', ns]);
    for (const p of pids.stdout.split('\n').filter((l) => /^\d+$/.test(l.trim()))) killTree(Number(p));
  }
  await host.destroy();
  if (current === host) current = undefined;
}

export const guestSpec = (domid: number, extra: Partial<GuestSpec> = {}): GuestSpec => ({
  domid,
  name: `guest${domid}`,
  mac: `00:16:3e:00:00:${domid.toString(16).padStart(2, '0')}`,
  addresses: [`192.168.0.${100 + domid}/24`],
  xenstoreIp: `192.168.0.${100 + domid}`,
  ...extra,
});

export interface HookRun extends Finished {
  /** The environment the hook was given (the toolstack's, nothing else). */
  env: NodeJS.ProcessEnv;
}

export interface HookOptions {
  script?: string;
  form?: ToolstackForm;
  /** Killed after this long (default 40 s: libxl's LIBXL_HOTPLUG_TIMEOUT). */
  killAfterMs?: number;
}

/** Starts a vif-script in dom0 exactly as libxl does; the caller awaits `done`. */
export function startHook(host: SimHost, guest: SimGuest, command: 'online' | 'offline', options: HookOptions = {}): { pid: number; done: Promise<HookRun> } {
  const call = host.vifScriptCall(options.script ?? VIF_XENNET, guest, command, options.form ?? 'libxl');
  const t = spawnTracked('ip', ['netns', 'exec', host.dom0.name, call.file, ...call.argv], { env: call.env, killAfterMs: options.killAfterMs ?? 40_000 });
  return { pid: t.pid, done: t.done.then((f) => ({ ...f, env: call.env })) };
}

export function hook(host: SimHost, guest: SimGuest, command: 'online' | 'offline', options: HookOptions = {}): Promise<HookRun> {
  return startHook(host, guest, command, options).done;
}

/** xenstore through Debian's own tools, on the default socket (they find it themselves). */
export const xs = {
  async read(path: string): Promise<string | undefined> {
    const r = await run('xenstore-read', [path], { env: operatorEnv(), timeoutMs: 10_000 });
    return r.code === 0 ? r.stdout.replace(/\n$/, '') : undefined;
  },
  async write(path: string, value: string): Promise<void> {
    await must(`xenstore-write ${path}`, run('xenstore-write', [path, value], { env: operatorEnv(), timeoutMs: 10_000 }));
  },
  async rm(path: string): Promise<void> {
    await run('xenstore-rm', [path], { env: operatorEnv(), timeoutMs: 10_000 });
  },
};

export interface LinkRow {
  ifname: string;
  address: string;
  mtu: number;
  master?: string;
  flags: string[];
  operstate?: string;
  linkinfo?: { info_kind?: string };
}

export async function links(ns: SimNetns): Promise<LinkRow[]> {
  return ns.ipJson<LinkRow[]>('-d', 'link', 'show');
}

export async function linkOf(ns: SimNetns, name: string): Promise<LinkRow | undefined> {
  return (await links(ns)).find((l) => l.ifname === name);
}

export interface AddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  scope?: string;
  tentative?: boolean;
}

export async function addressesOf(ns: SimNetns, dev: string): Promise<string[]> {
  const rows = await ns.ipJson<{ ifname: string; addr_info: AddrInfo[] }[]>('addr', 'show', 'dev', dev);
  return rows.flatMap((r) => r.addr_info.filter((a) => !a.local.startsWith('fe80:')).map((a) => `${a.local}/${a.prefixlen}`)).sort();
}

export type Table = 'iptables' | 'ip6tables' | 'ebtables';
export const tables: Table[] = ['iptables', 'ip6tables', 'ebtables'];

/** `<table>-save` in dom0, without counters, comments and timestamps. */
export async function saveTable(host: SimHost, table: Table): Promise<string> {
  const r = await host.dom0.exec(`${table}-save`, [], { env: operatorEnv(), timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`${table}-save in dom0: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => !l.startsWith('#') && l.trim() !== '')
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[]').replace(/ -c \d+ \d+/g, ''))
    .join('\n');
}

/** XN- chain declarations in one table. */
export async function xnChains(host: SimHost, table: Table): Promise<string[]> {
  return (await saveTable(host, table)).split('\n').filter((l) => l.startsWith(':XN-')).map((l) => l.split(' ')[0]!.slice(1));
}

/** xennet's nftables tables as nft prints them ('' for one that does not exist). */
export async function nftTables(host: SimHost): Promise<string> {
  let out = '';
  for (const family of ['bridge', 'inet']) {
    const r = await host.dom0.exec('nft', ['list', 'table', family, 'xennet'], { env: operatorEnv(), timeoutMs: 30_000 });
    if (r.code === 0) out += r.stdout;
    else if (!/No such file or directory/.test(r.stderr)) throw new Error(`nft list table ${family} xennet in dom0: ${r.stderr}`);
  }
  return out;
}

/** The chains of xennet's nftables tables (the default backend's). */
export async function nftChains(host: SimHost): Promise<string[]> {
  return [...(await nftTables(host)).matchAll(/^\s*chain (\S+) \{$/gm)].map((m) => m[1]!);
}

/** Lines of every table that mention a vif (xtables tables, then xennet's nftables tables as `nft: ...`). */
export async function rulesMentioning(host: SimHost, vif: string): Promise<string[]> {
  const out: string[] = [];
  const re = new RegExp(`(^|[^0-9A-Za-z_.])${vif.replace(/\./g, '\\.')}($|[^0-9A-Za-z_.])`);
  for (const t of tables) for (const l of (await saveTable(host, t)).split('\n')) if (re.test(l)) out.push(`${t}: ${l}`);
  for (const l of (await nftTables(host)).split('\n')) if (re.test(l)) out.push(`nft: ${l.trim()}`);
  return out;
}

/**
 * Waits until IPv6 configuration in `ns` has settled: no address is tentative, and every link
 * that is up with carrier and multicast has its link-local address.
 */
export async function settleIpv6(ns: SimNetns, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await ns.ipJson<{ ifname: string; flags: string[]; addr_info: AddrInfo[] }[]>('addr', 'show');
    const pending = rows.filter(
      (l) =>
        l.addr_info.some((a) => a.tentative) ||
        (l.flags.includes('UP') && l.flags.includes('LOWER_UP') && l.flags.includes('MULTICAST') && !l.flags.includes('LOOPBACK') && !l.addr_info.some((a) => a.family === 'inet6' && a.scope === 'link')),
    );
    // A link with IPv6 disabled (xennet turns dom0's stack off on guest ports) never gets one.
    const waiting: typeof pending = [];
    for (const l of pending) {
      const off = await ns.exec('cat', [`/proc/sys/net/ipv6/conf/${l.ifname}/disable_ipv6`]);
      if (!(off.code === 0 && off.stdout.trim() === '1' && !l.addr_info.some((a) => a.family === 'inet6'))) waiting.push(l);
    }
    pending.length = 0;
    pending.push(...waiting);
    if (pending.length === 0) return;
    if (Date.now() > deadline) throw new Error(`IPv6 in ${ns.name} did not settle within ${timeoutMs} ms: ${pending.map((l) => l.ifname).join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stripVolatile(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripVolatile);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (/timer|life_time|^expires$|^used$/.test(k)) continue;
      out[k] = stripVolatile(x);
    }
    return out;
  }
  return v;
}

const isLinkLocal6 = (s: unknown): boolean => typeof s === 'string' && /^fe80:/i.test(s);

/**
 * dom0 as the kernel reports it, one line per object: links (`ip -j -d link show`), addresses
 * (`ip -j addr show`, without fe80:: link-local and tentative flags), routes of every table
 * (-4 and -6, without fe80:: ones), and iptables/ip6tables/ebtables-save without counters and
 * comments. Waits for IPv6 to settle first.
 */
export async function snapshotDom0(host: SimHost): Promise<string> {
  const ns = host.dom0;
  await settleIpv6(ns);
  const lines: string[] = [];
  for (const l of await ns.ipJson<Record<string, unknown>[]>('-d', 'link', 'show')) lines.push(`link ${JSON.stringify(stripVolatile(l))}`);
  for (const l of await ns.ipJson<{ ifname: string; addr_info: (AddrInfo & Record<string, unknown>)[] }[]>('addr', 'show')) {
    for (const a of l.addr_info) {
      if (isLinkLocal6(a.local)) continue;
      const { tentative: _t, ...rest } = a;
      lines.push(`addr ${l.ifname} ${JSON.stringify(stripVolatile(rest))}`);
    }
  }
  for (const family of ['-4', '-6']) {
    for (const r of await ns.ipJson<Record<string, unknown>[]>(family, 'route', 'show', 'table', 'all')) {
      if (isLinkLocal6(r['dst']) || isLinkLocal6(r['prefsrc'])) continue;
      lines.push(`route${family} ${JSON.stringify(stripVolatile(r))}`);
    }
  }
  for (const t of tables) for (const l of (await saveTable(host, t)).split('\n')) lines.push(`${t} ${l}`);
  return lines.join('\n') + '\n';
}

/** The lines only in `before` (-) and only in `after` (+). */
export function snapshotDiff(before: string, after: string): string {
  const a = before.split('\n');
  const b = after.split('\n');
  const gone = a.filter((l) => !b.includes(l)).map((l) => `- ${l}`);
  const added = b.filter((l) => !a.includes(l)).map((l) => `+ ${l}`);
  return [...gone, ...added].join('\n') || (before === after ? '' : '(same lines, different order)');
}

/** hotplug-status and hotplug-error of a guest, read from the in-memory xenstored. */
export function hotplug(host: SimHost, g: SimGuest): { status: string | undefined; error: string | undefined } {
  return { status: host.xenstored.read(`${g.backendPath}/hotplug-status`), error: host.xenstored.read(`${g.backendPath}/hotplug-error`) };
}

/** Adds how the hook ended to a non-empty list of problems that does not say it yet. */
export function withOutcome(problems: string[], r: Finished): string[] {
  if (problems.length > 0 && !problems.some((p) => p.includes('stderr:'))) problems.push(`the hook: ${ended(r)}`);
  return problems;
}

/** Asserts a list of problems is empty, listing them all. */
export function noProblems(problems: string[], what: string): void {
  if (problems.length > 0) assert.fail(`${what}:\n  - ${problems.join('\n  - ')}`);
}

export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The installed launcher's text (what `xennet install-hooks` wrote). */
export const launcher = (name: string): string => readFileSync(join(XEN_SCRIPTS, name), 'utf8');
