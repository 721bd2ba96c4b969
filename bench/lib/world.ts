/**
 * A benchmark world on the simulated Xen host: N background guests attached to xenbr0 and
 * firewalled either by xennet (`xennet apply`) or the way Xen's vif-bridge does it (per-vif
 * physdev rules inserted at the top of FORWARD, so the first guests' rules come last).
 * Background vifs are veth pairs whose peers live in one "sink" namespace; measured guests are
 * full SimHost guests with their own namespace.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimHost, type GuestSpec, type SimGuest } from '../../src/sim/host.js';
import type { SimNetns } from '../../src/sim/netns.js';
import { copyXenScriptsWithIptables } from '../../src/sim/xen-scripts.js';
import { run } from '../../src/sys/exec.js';

export type Tool = 'xennet' | 'xen' | 'none';

export const bgIp = (k: number): string => `10.${(k >> 8) & 255}.${k & 255}.10`;
export const bgMac = (k: number): string => `00:16:3e:${((k >> 16) & 255).toString(16).padStart(2, '0')}:${((k >> 8) & 255).toString(16).padStart(2, '0')}:${(k & 255).toString(16).padStart(2, '0')}`;

export interface World {
  host: SimHost;
  sink: SimNetns;
  tool: Tool;
  env: NodeJS.ProcessEnv;
  /** Copy of Xen's scripts with vif-bridge's iptables part re-enabled. */
  xenScripts: string;
  measured: SimGuest[];
}

/** Xen's scripts with Debian's early `return 0` in handle_iptable removed (anti-spoofing on), in a temporary copy. */
export function xenScriptsWithIptables(): string {
  return copyXenScriptsWithIptables(mkdtempSync(join(tmpdir(), 'xnt-xen-scripts-')));
}

/** Xen 4.x's rules for one vif (frob_iptable with ip set, plus the DHCP rule), as restore lines. */
export function xenRules(vif: string, ip: string): string[] {
  return [
    `-A FORWARD -m physdev --physdev-in ${vif} --physdev-is-bridged -s ${ip}/32 -j ACCEPT`,
    `-A FORWARD -m physdev --physdev-out ${vif} --physdev-is-bridged -j ACCEPT`,
    `-A FORWARD -m physdev --physdev-in ${vif} --physdev-is-bridged -p udp --sport 68 --dport 67 -j ACCEPT`,
    `-A FORWARD -m physdev --physdev-out ${vif} --physdev-is-bridged -j ACCEPT`,
  ];
}

export interface WorldOptions {
  tool: Tool;
  /** Background guests (domids 100..100+N-1). */
  background: number;
  /** Full guests created first (domids 1..), e.g. for traffic. */
  measured?: GuestSpec[];
  rules?: string;
  /** xennet's firewall backend, named in the rule file as an operator would (unset: xennet's default, nftables where it works). */
  backend?: 'xtables' | 'nftables';
  /** Whether background guests have an `ip` in xenstore (default true; false: guests on DHCP). */
  backgroundIp?: boolean;
  /**
   * Whether a hook that finds no daemon starts one (xennet's default). Default false here: each
   * figure names the path it measures (a daemon started by a setup hook would answer the CLI).
   */
  autostart?: boolean;
}

export async function buildWorld(o: WorldOptions): Promise<World> {
  const host = await SimHost.create({ prefix: 'xnt', autostart: o.autostart ?? false });
  try {
    await host.takeover();
    const sink = await host.addNamespace('sink');
    const env: NodeJS.ProcessEnv = {};
    // No rules of the bench's own: a file with the built-in defaults (a named file must exist).
    const rules = o.rules ?? (o.backend ? `version: 1\nbackend: ${o.backend}\n` : 'version: 1\n');
    const f = join(host.dir, 'xennet.yaml');
    writeFileSync(f, rules);
    env['XENNET_RULES'] = f;
    if (o.tool !== 'xennet') env['XENNET_FIREWALL'] = 'off';
    const world: World = { host, sink, tool: o.tool, env, xenScripts: xenScriptsWithIptables(), measured: [] };
    for (const spec of o.measured ?? []) {
      const g = await host.addGuest(spec);
      world.measured.push(g);
      const r = o.tool === 'xen' ? await host.runVifScript(join(world.xenScripts, 'vif-bridge'), g, 'online') : await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
      if (r.code !== 0) throw new Error(`online ${g.vif}: ${r.stderr}`);
    }
    const dom0: string[] = [];
    const sinkLines: string[] = [];
    for (let i = 0; i < o.background; i++) {
      const k = 100 + i;
      dom0.push(`link add vif${k}.0 type veth peer name s${k} netns ${sink.name}`);
      dom0.push(`link set vif${k}.0 address fe:ff:ff:ff:ff:ff master xenbr0 up`);
      sinkLines.push(`link set s${k} address ${bgMac(k)} up`);
      const be = `/local/domain/0/backend/vif/${k}/0`;
      host.xenstored.write(`/local/domain/${k}/name`, `bg${k}`);
      host.xenstored.write(`${be}/mac`, bgMac(k));
      if (o.backgroundIp !== false) host.xenstored.write(`${be}/ip`, bgIp(k));
      host.xenstored.write(`${be}/bridge`, 'xenbr0');
      host.xenstored.write(`${be}/hotplug-status`, 'connected');
    }
    // Background links need no IPv6: 1000 new links doing DAD, MLD and router solicitations,
    // each flooded to 1000 bridge ports, would load the machine for a while and skew what follows.
    for (const ns of [host.dom0, sink]) await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
    await host.dom0.batch(dom0);
    await sink.batch(sinkLines);
    await host.dom0.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=0']);
    if (o.tool === 'xen' && o.background > 0) {
      // vif-bridge online inserts at the top: the newest guest's rules come first.
      const lines = ['*filter'];
      for (let i = o.background - 1; i >= 0; i--) lines.push(...xenRules(`vif${100 + i}.0`, bgIp(100 + i)));
      lines.push('COMMIT', '');
      const r = await host.dom0.exec('iptables-restore', ['--noflush', '-w'], { input: lines.join('\n') });
      if (r.code !== 0) throw new Error(`xen rules: ${r.stderr}`);
      // The measured guests were onlined first, so their rules are last: move them to the end.
      if (world.measured.length > 0) {
        const save = (await host.dom0.exec('iptables-save', ['-t', 'filter'])).stdout;
        const mine = save.split('\n').filter((l) => world.measured.some((g) => l.includes(`--physdev-in ${g.vif} `) || l.includes(`--physdev-out ${g.vif} `)) && l.startsWith('-A FORWARD'));
        const del = ['*filter', ...mine.map((l) => l.replace(/^-A/, '-D')), ...mine, 'COMMIT', ''];
        await host.dom0.exec('iptables-restore', ['--noflush', '-w'], { input: del.join('\n') });
      }
    }
    if (o.tool !== 'xennet') {
      // Same br_netfilter setting as xennet's for a fair baseline.
      for (const k of ['iptables', 'ip6tables']) await host.dom0.exec('sysctl', ['-qw', `net.bridge.bridge-nf-call-${k}=1`]);
    }
    return world;
  } catch (e) {
    await host.destroy();
    throw e;
  }
}

/**
 * Runs `xennet ...` in dom0 under GNU time; returns wall seconds and peak RSS in KiB. `cli`: the
 * program run (default the source tree's dist/src/cli/main.js; `packagedCli()` is what the
 * Debian package installs); `nodeFlags`: Node.js's own (a CPU profile).
 */
export async function timedXennet(world: World, args: string[], cli = join(process.cwd(), 'dist/src/cli/main.js'), nodeFlags: readonly string[] = []): Promise<{ seconds: number; rssKiB: number; code: number; stderr: string }> {
  const r = await world.host.dom0.exec('/usr/bin/time', ['-f', 'TIME %e %M', 'node', ...nodeFlags, cli, ...args], { env: world.host.env(world.env), timeoutMs: 600_000 });
  const m = /TIME ([\d.]+) (\d+)/.exec(r.stderr);
  return { seconds: m ? Number(m[1]) : NaN, rssKiB: m ? Number(m[2]) : NaN, code: r.code, stderr: r.stderr };
}

export async function destroyWorld(w: World): Promise<void> {
  await w.host.destroy();
  await run('rm', ['-rf', w.xenScripts]);
}

/**
 * The CLI as the Debian package installs it (one esbuild bundle, code-split; build-deb.ts's
 * options), built into dist/bench-cli/ (node_modules above it has the packages it loads at run time).
 */
export async function packagedCli(): Promise<string> {
  const { build } = await import('esbuild');
  const { programBundleOptions } = await import('../../src/package/bundle-options.js');
  const outdir = join(process.cwd(), 'dist', 'bench-cli');
  await build({ ...programBundleOptions('bench'), absWorkingDir: process.cwd(), outdir });
  return join(outdir, 'xennet.mjs');
}

/**
 * The xenstore nodes libxl writes for a new guest's vif backend (device 0), hotplug-status empty:
 * written in one go just before its hook runs (the storm bench, the soak).
 */
export function vifBackendNodes(domid: number, name: string, mac: string, ip: string): [string, string][] {
  const be = `/local/domain/0/backend/vif/${domid}/0`;
  return [
    [`/local/domain/${domid}/name`, name],
    [`${be}/mac`, mac],
    [`${be}/ip`, ip],
    [`${be}/bridge`, 'xenbr0'],
    [`${be}/frontend`, `/local/domain/${domid}/device/vif/0`],
    [`${be}/online`, '1'],
    [`${be}/state`, '2'],
    [`${be}/hotplug-status`, ''],
  ];
}
